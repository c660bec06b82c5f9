namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// A stretch of storage work whose folder syncs are made once per folder at its end rather than after every file
/// operation. A driver that makes each change durable by syncing its folder (the filesystem) consults
/// <see cref="SyncOrDefer"/>; object stores are durable per request and ignore it. Everything done within the scope
/// is visible to other readers at once, as always; what changes is only when it becomes durable: by the time
/// <see cref="RunAsync"/> returns, all of it is. Bulk work uses it to make one step durable for a whole batch before
/// the next step starts (garbage collection: claims, then unlinks, then bytes), paying one folder sync per folder
/// and step instead of one per file. Nothing that answers a client may run in a scope: an acknowledged write must be
/// durable when it is acknowledged.
/// </summary>
public sealed class DeferredSync
{
    private static readonly AsyncLocal<DeferredSync?> current = new();

    private readonly HashSet<string> folders = new(StringComparer.Ordinal);
    private bool ended;

    private DeferredSync()
    {
    }

    /// <summary>
    /// Runs <paramref name="work"/> with folder syncs deferred, then syncs every folder it changed (also when it
    /// fails: what it did is kept durable as far as it got). The scope is seen by the work and everything it starts,
    /// never by the caller: an async method's change to its context does not flow back. Returns how many folders
    /// were synced at the end.
    /// </summary>
    public static async Task<int> RunAsync(Func<Task> work)
    {
        var scope = new DeferredSync();
        current.Value = scope;
        try
        {
            await work();
        }
        catch
        {
            current.Value = null;
            try
            {
                scope.SyncAll();
            }
            catch (IOException)
            {
                // The work's own failure is the one to report.
            }
            throw;
        }
        current.Value = null;
        return scope.SyncAll();
    }

    /// <summary>Syncs the folder now, or, within a scope, once at the scope's end.</summary>
    public static void SyncOrDefer(string folder)
    {
        if (current.Value is { } scope)
        {
            lock (scope.folders)
            {
                // Work the scope started but did not wait for (a background task inherits the context) syncs at once.
                if (!scope.ended)
                {
                    scope.folders.Add(folder);
                    return;
                }
            }
        }
        DurableDirectory.Sync(folder);
    }

    private int SyncAll()
    {
        string[] pending;
        lock (folders)
        {
            ended = true;
            pending = [.. folders];
        }
        foreach (var folder in pending)
        {
            // A folder removed since (a whole tree deleted) has nothing left to make durable; its parent was synced then.
            if (Directory.Exists(folder)) DurableDirectory.Sync(folder);
        }
        return pending.Length;
    }
}
