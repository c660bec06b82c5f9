using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// Removes what a killed process leaves behind: objects in /tmp (unpublished blob writers) and, where the driver has
/// temporaries of its own (the filesystem's dot-files beside metadata), those below /repositories. Only what nobody
/// has written to for the expiry is touched, since another process sharing the store may be writing a young one right
/// now. Folders are left alone: removing an empty one could race with a writer that has just created it.
/// </summary>
public sealed class CrashDebris(IStorageDriver driver, TimeProvider time, ILogger<CrashDebris> logger)
{
    /// <summary>Removes debris last written before now minus <paramref name="expiry"/>; returns how many objects went.</summary>
    public async Task<int> SweepAsync(TimeSpan expiry, CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - expiry;
        var removed = 0;
        foreach (var name in await driver.ListOrEmptyAsync(RegistryPaths.Temporaries, cancellationToken))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var path = StoragePath.Join(RegistryPaths.Temporaries, name);
            if (await driver.TryStatAsync(path, cancellationToken) is { IsDirectory: false } info && info.ModifiedTime <= cutoff
                && await TryDeleteAsync(path, cancellationToken)) removed++;
        }
        if (driver is ISweepsOwnTemporaries own && await driver.DirectoryExistsAsync(RegistryPaths.Repositories, cancellationToken))
            removed += await own.SweepTemporariesAsync(RegistryPaths.Repositories, cutoff, cancellationToken);
        if (removed > 0) logger.LogInformation("Removed {Count} temporary files older than {Expiry}", removed, expiry);
        return removed;
    }

    private async Task<bool> TryDeleteAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            return await driver.TryDeleteAsync(path, cancellationToken);
        }
        catch (PathBusyException)
        {
            return false; // a writer still holds it after all
        }
    }
}
