using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// The repositories that exist. A repository has no record to create first, so concurrent first pushes cannot race
/// on one; its folder holds "_" folders, which no name component can start with, so repository folders and their
/// data folders never collide.
/// <para>
/// The catalog lists a repository once it holds a manifest (a revision or a tag, temporaries and lock files aside):
/// folders left by an interrupted first write, or a push that sent layers but never a manifest, do not count. It is
/// served from a sorted in-memory index, built on first use, kept current by this process's manifest pushes and
/// deletes, and rebuilt from storage every CatalogRefreshInterval so that other processes sharing the storage show
/// up within that time. A page costs a binary search and a copy of the page.
/// </para>
/// </summary>
public sealed class RepositoryCatalog(IStorageDriver driver, IOptions<RegistryOptions> options, TimeProvider time, ILogger<RepositoryCatalog> logger)
    : IDisposable
{
    private readonly Lock gate = new();
    private readonly CancellationTokenSource disposed = new();

    /// <summary>
    /// Held by every change of the index, and across the storage reads that decide a removal or the end of a
    /// rebuild, so a push's addition can never be undone by a check made before its write. Additions only wait for
    /// it; storage is never read under <see cref="gate"/>.
    /// </summary>
    private readonly SemaphoreSlim changes = new(1, 1);

    /// <summary>All listed names in ordinal order; replaced whole (never changed in place) while holding <see cref="changes"/>.</summary>
    private string[]? names;

    private Task? firstBuild;
    private ITimer? refreshTimer;
    private int refreshing;

    /// <summary>Names this process changed while a rebuild walked the storage; the walk may have missed them. Under <see cref="changes"/>.</summary>
    private HashSet<string>? changedDuringRebuild;

    /// <summary>Whether anything was ever written into the repository: enough for its tag list to answer.</summary>
    public async Task<bool> ExistsAsync(RepositoryName repository, CancellationToken cancellationToken) =>
        await driver.DirectoryExistsAsync(RegistryPaths.ManifestsDirectory(repository), cancellationToken)
        || await driver.DirectoryExistsAsync(RegistryPaths.LayersDirectory(repository), cancellationToken);

    /// <summary>Every listed repository in ordinal order: a snapshot that later changes do not touch.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref names) is { } current) return current;
        Task build;
        lock (gate)
        {
            firstBuild ??= Task.Run(FirstBuildAsync, CancellationToken.None);
            build = firstBuild;
        }
        try
        {
            // Shared by every early caller: one caller giving up must not cancel it for the others.
            await build.WaitAsync(cancellationToken);
        }
        catch when (build.IsFaulted)
        {
            // Let the next request try again rather than fail forever on one unreadable moment.
            lock (gate) if (firstBuild == build) firstBuild = null;
            throw;
        }
        return Volatile.Read(ref names)!;
    }

    /// <summary>A manifest was just recorded in <paramref name="repository"/>.</summary>
    public async Task AddedAsync(RepositoryName repository)
    {
        // The catalog lists the base namespace; a change's overlay is seen only through its view.
        if (repository.Overlay is not null) return;
        // Not cancellable: the manifest is recorded, so the index must learn about it.
        await changes.WaitAsync(CancellationToken.None);
        try
        {
            changedDuringRebuild?.Add(repository.Value);
            if (names is not null) Volatile.Write(ref names, With(names, repository.Value, listed: true));
        }
        finally
        {
            changes.Release();
        }
    }

    /// <summary>A manifest or tag was just deleted from <paramref name="repository"/>: it may have been the last one.</summary>
    public async Task RemovedAsync(RepositoryName repository)
    {
        if (repository.Overlay is not null) return;
        // Not cancellable, like AddedAsync: the delete has happened.
        await changes.WaitAsync(CancellationToken.None);
        try
        {
            changedDuringRebuild?.Add(repository.Value);
            // Looked at while holding the changes, so a concurrent push's addition cannot be undone by a check made before its write.
            if (names is not null) Volatile.Write(ref names, With(names, repository.Value, await HoldsManifestAsync(repository.Value, disposed.Token)));
        }
        finally
        {
            changes.Release();
        }
    }

    /// <summary>Rebuilds the index from storage now. Concurrent calls and timer ticks coalesce into the one running.</summary>
    public async Task RefreshAsync()
    {
        if (Interlocked.Exchange(ref refreshing, 1) == 1) return;
        try
        {
            await WithChangesAsync(() =>
            {
                changedDuringRebuild = [];
                return Task.CompletedTask;
            });
            var found = new List<string>();
            await WalkAsync(RegistryPaths.Repositories, "", found, disposed.Token);
            found.Sort(StringComparer.Ordinal);
            var rebuilt = found.ToArray();
            await WithChangesAsync(async () =>
            {
                // The walk may have passed a folder before or after this process wrote to it: look again now.
                foreach (var name in changedDuringRebuild!)
                    rebuilt = With(rebuilt, name, await HoldsManifestAsync(name, disposed.Token));
                changedDuringRebuild = null;
                Volatile.Write(ref names, rebuilt);
            });
            logger.LogDebug("Catalog rebuilt: {Count} repositories", rebuilt.Length);
        }
        finally
        {
            await WithChangesAsync(() =>
            {
                changedDuringRebuild = null;
                return Task.CompletedTask;
            });
            Volatile.Write(ref refreshing, 0);
        }
    }

    private async Task WithChangesAsync(Func<Task> change)
    {
        await changes.WaitAsync(CancellationToken.None);
        try
        {
            await change();
        }
        finally
        {
            changes.Release();
        }
    }

    private async Task FirstBuildAsync()
    {
        await RefreshAsync();
        lock (gate)
        {
            if (disposed.IsCancellationRequested) return;
            var interval = options.Value.CatalogRefreshInterval;
            refreshTimer = time.CreateTimer(_ => _ = RefreshInBackgroundAsync(), null, interval, interval);
        }
    }

    private async Task RefreshInBackgroundAsync()
    {
        try
        {
            await RefreshAsync();
        }
        catch (OperationCanceledException) when (disposed.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception e)
        {
            // Nobody awaits a timer's refresh; the index stays as it was until the next tick.
            logger.LogWarning(e, "Rebuilding the catalog failed; will try again");
        }
    }

    /// <summary><paramref name="sorted"/> with <paramref name="name"/> present or absent; the same array when nothing changes.</summary>
    private static string[] With(string[] sorted, string name, bool listed)
    {
        var index = Array.BinarySearch(sorted, name, StringComparer.Ordinal);
        if (listed == index >= 0) return sorted;
        // Copy on write: pages already handed out keep their snapshot. O(repositories), but only when one appears or goes.
        var list = new List<string>(sorted);
        if (listed) list.Insert(~index, name);
        else list.RemoveAt(index);
        return list.ToArray();
    }

    private async Task WalkAsync(string directory, string prefix, List<string> found, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        IReadOnlyList<string> children;
        try
        {
            children = await driver.ListAsync(directory, cancellationToken);
        }
        catch (PathNotFoundException)
        {
            return; // gone meanwhile, or a file: nothing to walk
        }
        foreach (var name in children)
        {
            if (name.StartsWith('_')) continue;
            await WalkAsync(StoragePath.Join(directory, name), prefix.Length == 0 ? name : $"{prefix}/{name}", found, cancellationToken);
        }
        if (prefix.Length > 0 && RepositoryName.TryParse(prefix, out _) && await HoldsManifestAsync(prefix, cancellationToken)) found.Add(prefix);
    }

    /// <summary>A tag or a manifest revision that really exists, not a temporary, lock file or empty folder (the driver lists none of those).</summary>
    private async Task<bool> HoldsManifestAsync(string repository, CancellationToken cancellationToken)
    {
        if (await HasChildAsync(RegistryPaths.TagsDirectory(repository), cancellationToken)) return true;
        var revisions = RegistryPaths.RevisionsDirectory(repository);
        foreach (var algorithm in await driver.ListOrEmptyAsync(revisions, cancellationToken))
            if (await HasChildAsync(StoragePath.Join(revisions, algorithm), cancellationToken)) return true;
        return false;
    }

    private async Task<bool> HasChildAsync(string directory, CancellationToken cancellationToken)
    {
        try
        {
            return (await driver.ListAsync(directory, startAfter: null, maxCount: 1, cancellationToken)).Count > 0;
        }
        catch (PathNotFoundException)
        {
            return false;
        }
    }

    // The token source is cancelled, not disposed: a timer callback already under way may still read its token.
    public void Dispose()
    {
        lock (gate)
        {
            disposed.Cancel();
            refreshTimer?.Dispose();
        }
    }
}
