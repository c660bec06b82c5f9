using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// The repositories that exist. A repository has no record to create first, so concurrent first pushes cannot race
/// on one; its folder holds "_" folders, which no name component can start with, so repository folders and their
/// data folders never collide.
/// <para>
/// The catalog lists a repository once it holds a manifest (a revision or a tag file, temporaries and lock files
/// aside): folders left by an interrupted first write, or a push that sent layers but never a manifest, do not
/// count. It is served from a sorted in-memory index, built on first use, kept current by this process's manifest
/// pushes and deletes, and rebuilt from storage every CatalogRefreshInterval so that other processes sharing the
/// storage root show up within that time. A page costs a binary search and a copy of the page.
/// </para>
/// </summary>
public sealed class RepositoryCatalog(StorageLayout layout, IOptions<RegistryOptions> options, TimeProvider time, ILogger<RepositoryCatalog> logger)
    : IDisposable
{
    private readonly Lock gate = new();
    private readonly CancellationTokenSource disposed = new();

    /// <summary>All listed names in ordinal order; replaced whole (never changed in place) under <see cref="gate"/>.</summary>
    private string[]? names;

    private Task? firstBuild;
    private ITimer? refreshTimer;
    private int refreshing;

    /// <summary>Names this process changed while a rebuild walked the storage; the walk may have missed them.</summary>
    private HashSet<string>? changedDuringRebuild;

    /// <summary>Whether anything was ever written into the repository: enough for its tag list to answer.</summary>
    public bool Exists(RepositoryName repository)
    {
        var root = layout.Repository(repository);
        return Directory.Exists(Path.Combine(root, "_manifests")) || Directory.Exists(Path.Combine(root, "_layers"));
    }

    /// <summary>Every listed repository in ordinal order: a snapshot that later changes do not touch.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref names) is { } current) return current;
        Task build;
        lock (gate)
        {
            firstBuild ??= Task.Run(FirstBuild, CancellationToken.None);
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
    public void Added(RepositoryName repository)
    {
        lock (gate)
        {
            changedDuringRebuild?.Add(repository.Value);
            if (names is not null) names = With(names, repository.Value, listed: true);
        }
    }

    /// <summary>A manifest or tag was just deleted from <paramref name="repository"/>: it may have been the last one.</summary>
    public void Removed(RepositoryName repository)
    {
        lock (gate)
        {
            changedDuringRebuild?.Add(repository.Value);
            // Looked at under the lock, so a concurrent push's Added cannot be undone by a check made before its write.
            if (names is not null) names = With(names, repository.Value, HoldsManifest(layout.Repository(repository)));
        }
    }

    /// <summary>Rebuilds the index from storage now. Concurrent calls and timer ticks coalesce into the one running.</summary>
    public void Refresh()
    {
        if (Interlocked.Exchange(ref refreshing, 1) == 1) return;
        try
        {
            lock (gate) changedDuringRebuild = [];
            var found = new List<string>();
            Walk(layout.RepositoriesRoot, "", found, disposed.Token);
            found.Sort(StringComparer.Ordinal);
            var rebuilt = found.ToArray();
            lock (gate)
            {
                // The walk may have passed a folder before or after this process wrote to it: look again now.
                foreach (var name in changedDuringRebuild!)
                    rebuilt = With(rebuilt, name, HoldsManifest(Path.Combine(layout.RepositoriesRoot, name)));
                changedDuringRebuild = null;
                names = rebuilt;
            }
            logger.LogDebug("Catalog rebuilt: {Count} repositories", rebuilt.Length);
        }
        finally
        {
            lock (gate) changedDuringRebuild = null;
            Volatile.Write(ref refreshing, 0);
        }
    }

    private void FirstBuild()
    {
        Refresh();
        lock (gate)
        {
            if (disposed.IsCancellationRequested) return;
            var interval = options.Value.CatalogRefreshInterval;
            refreshTimer = time.CreateTimer(_ => RefreshInBackground(), null, interval, interval);
        }
    }

    private void RefreshInBackground()
    {
        try
        {
            Refresh();
        }
        catch (OperationCanceledException) when (disposed.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception e)
        {
            // Anything escaping a timer callback would end the process; the index stays as it was until the next tick.
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

    private static void Walk(string directory, string prefix, List<string> found, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        List<string> children;
        try
        {
            children = Directory.EnumerateDirectories(directory).ToList();
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }
        foreach (var child in children)
        {
            var name = Path.GetFileName(child);
            if (name.StartsWith('_') || name.StartsWith('.')) continue;
            Walk(child, prefix.Length == 0 ? name : $"{prefix}/{name}", found, cancellationToken);
        }
        if (prefix.Length > 0 && RepositoryName.TryParse(prefix, out _) && HoldsManifest(directory)) found.Add(prefix);
    }

    /// <summary>A tag file or a manifest revision that really exists, not a temporary, lock file or empty folder.</summary>
    private static bool HoldsManifest(string repositoryDirectory)
    {
        var manifests = Path.Combine(repositoryDirectory, "_manifests");
        if (HasDataFile(Path.Combine(manifests, "tags"))) return true;
        try
        {
            return Directory.EnumerateDirectories(Path.Combine(manifests, "revisions")).Any(HasDataFile);
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
    }

    private static bool HasDataFile(string directory)
    {
        try
        {
            return Directory.EnumerateFiles(directory, "*", DataFiles).Any(path => !StorageLayout.IsTemporary(Path.GetFileName(path)));
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
    }

    // Dot-named files count as hidden on Unix; they are skipped by the name check, not by attributes.
    private static readonly EnumerationOptions DataFiles = new() { AttributesToSkip = 0, IgnoreInaccessible = true };

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
