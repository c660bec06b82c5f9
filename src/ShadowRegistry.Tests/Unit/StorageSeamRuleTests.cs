using System.Text.RegularExpressions;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Unit;

/// <summary>
/// README, "Repository": nothing in Storage/ (outside the drivers), Upstream/, Api/, Manifests/ or Repositories/ touches files
/// directly; everything goes through the storage driver, so every driver stores all of it.
/// </summary>
public sealed partial class StorageSeamRuleTests
{
    [GeneratedRegex(@"\b(File|Directory|FileInfo|DirectoryInfo|FileStream|FileSystemEnumerable|DurableDirectory|AtomicFile|FileLock)\b\s*[.(<]|new\s+(FileStream|FileInfo|DirectoryInfo)\b")]
    private static partial Regex FileAccess();

    [Fact]
    public void OnlyTheFilesystemDriverTouchesFiles()
    {
        var source = Path.Combine(TestPaths.RepositoryRoot(), "src", "ShadowRegistry");
        var drivers = Path.Combine(source, "Storage", "Drivers") + Path.DirectorySeparatorChar;
        var offenders = new[] { "Storage", "Upstream", "Api", "Manifests", "Repositories" }
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(source, folder), "*.cs", SearchOption.AllDirectories))
            .Where(file => !file.StartsWith(drivers, StringComparison.Ordinal))
            .SelectMany(file => File.ReadLines(file).Select((line, index) => (file, line, index)))
            .Where(entry => !entry.line.TrimStart().StartsWith("//", StringComparison.Ordinal) && FileAccess().IsMatch(entry.line))
            .Select(entry => $"{Path.GetRelativePath(source, entry.file)}:{entry.index + 1}: {entry.line.Trim()}")
            .ToList();
        Assert.Empty(offenders);
    }
}
