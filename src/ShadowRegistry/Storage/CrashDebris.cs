using System.IO.Enumeration;
using System.Text.RegularExpressions;

namespace ShadowRegistry.Storage;

/// <summary>
/// Removes what a killed process leaves behind: files in tmp/ and the dot-temporaries <see cref="AtomicFile"/> writes
/// beside metadata under repositories/. Only files nobody has written to for the expiry are touched, since another
/// process sharing the storage root may be writing a young one right now. Lock files and data are never matched.
/// Folders are left alone: removing an empty one could race with a writer that has just created it.
/// </summary>
public sealed partial class CrashDebris(StorageLayout layout, TimeProvider time, ILogger<CrashDebris> logger)
{
    /// <summary>Removes debris last written before now minus <paramref name="expiry"/>; returns how many files went.</summary>
    public int Sweep(TimeSpan expiry, CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - expiry;
        var removed = 0;
        foreach (var (path, lastWrite) in Files(layout.TempRoot, atomicTemporariesBelow: false))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (lastWrite <= cutoff && AtomicFile.TryDelete(path)) removed++;
        }
        foreach (var (path, lastWrite) in Files(layout.RepositoriesRoot, atomicTemporariesBelow: true))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (lastWrite <= cutoff && AtomicFile.TryDelete(path)) removed++;
        }
        if (removed > 0) logger.LogInformation("Removed {Count} temporary files older than {Expiry}", removed, expiry);
        return removed;
    }

    /// <summary>The name <see cref="AtomicFile"/> gives its temporaries: exactly ".{32 hex}.tmp".</summary>
    public static bool IsAtomicTemporary(ReadOnlySpan<char> fileName) => AtomicTemporaryPattern().IsMatch(fileName);

    /// <summary>
    /// Every file directly in <paramref name="root"/>, or every atomic temporary anywhere below it, with its last write
    /// time read from the directory entry (no extra stat per file).
    /// </summary>
    private static FileSystemEnumerable<(string Path, DateTimeOffset LastWrite)> Files(string root, bool atomicTemporariesBelow) =>
        new(root, static (ref FileSystemEntry entry) => (entry.ToFullPath(), entry.LastWriteTimeUtc),
            new EnumerationOptions { RecurseSubdirectories = atomicTemporariesBelow, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint })
        {
            ShouldIncludePredicate = atomicTemporariesBelow
                ? static (ref FileSystemEntry entry) => !entry.IsDirectory && IsAtomicTemporary(entry.FileName)
                : static (ref FileSystemEntry entry) => !entry.IsDirectory,
        };

    [GeneratedRegex(@"^\.[0-9a-f]{32}\.tmp\z", RegexOptions.CultureInvariant)]
    private static partial Regex AtomicTemporaryPattern();
}
