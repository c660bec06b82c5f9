using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
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
        // Ages count on the registry's clock. On a fake one the start-up pass runs before the registry has started,
        // so there is nothing to wait for; it starts years away from the real clock, so a reading of that would show.
        var clock = new FakeTimeProvider();
        var longAgo = (clock.GetUtcNow() - TimeSpan.FromHours(2)).UtcDateTime;
        var justNow = clock.GetUtcNow().UtcDateTime;
        string Debris(string folder, string name, DateTime lastWrite)
        {
            var path = Path.Combine(root, folder, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, [1]);
            File.SetLastWriteTimeUtc(path, lastWrite);
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
            Debris(tags, $".{Guid.NewGuid():N}.tmp", justNow), // young: another process may be writing it
            Debris(tags, ".v1.lock", longAgo), // a lock file, however old
            Debris(tags, "v1", longAgo), // data
            Debris("tmp", Guid.NewGuid().ToString("N"), justNow),
        ];

        await using var server = await RegistryServer.StartOnAsync(root, services => services.AddSingleton<TimeProvider>(clock));

        Assert.All(old, path => Assert.False(File.Exists(path), $"{path} should have been removed"));
        Assert.All(kept, path => Assert.True(File.Exists(path), $"{path} should have been kept"));
    }
}
