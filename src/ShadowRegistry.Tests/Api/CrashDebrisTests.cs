using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// What a killed process leaves in the storage root is gone once a registry starts on it. Filesystem driver only:
/// the debris is files on disk.
/// </summary>
public sealed class CrashDebrisTests
{
    [Fact]
    public async Task OldTemporariesAreRemovedAtStartUpAndYoungOnesAndLockFilesKept()
    {
        using var scratch = new ScratchDirectory("debris");
        var root = scratch.Path;
        var longAgo = DateTime.UtcNow - TimeSpan.FromHours(2);
        string Debris(string folder, string name, DateTime? lastWrite)
        {
            var path = Path.Combine(root, folder, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, [1]);
            if (lastWrite is { } time) File.SetLastWriteTimeUtc(path, time);
            return path;
        }
        var tags = Path.Combine("repositories", "crashed", "app", "_manifests", "tags");
        string[] old =
        [
            Debris(tags, $".{Guid.NewGuid():N}.tmp", longAgo),
            Debris(Path.Combine("repositories", "crashed", "app", "_layers", "sha256"), $".{Guid.NewGuid():N}.tmp", longAgo),
            Debris("tmp", Guid.NewGuid().ToString("N"), longAgo),
        ];
        string[] kept =
        [
            Debris(tags, $".{Guid.NewGuid():N}.tmp", null), // young: another process may be writing it
            Debris(tags, ".v1.lock", longAgo), // a lock file, however old
            Debris(tags, "v1", longAgo), // data
            Debris("tmp", Guid.NewGuid().ToString("N"), null),
        ];

        await using var server = await RegistryServer.StartOnAsync(root);

        // The start-up pass runs in the background; give it a bounded while, as a client would.
        for (var i = 0; i < 100 && old.Any(File.Exists); i++) await Task.Delay(50);
        Assert.All(old, path => Assert.False(File.Exists(path), $"{path} should have been removed"));
        Assert.All(kept, path => Assert.True(File.Exists(path), $"{path} should have been kept"));
    }
}
