using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// Which repositories each change overlay holds anything in. A read through a view asks every overlay of its queue,
/// most of which hold nothing of the repository asked for; this answers that from memory, so a view with ten
/// changes ahead costs no more storage reads than the overlays that matter. Built per overlay by one walk of its
/// folder, used for at most <see cref="RegistryOptions.ChangeCacheDuration"/> (the bound on how late this process
/// sees another process's first write into a repository of an overlay) and walked again in the background from
/// half that age on, so reads under steady traffic never wait for a walk; this process's own writes are marked
/// before they are made, so they are never missed.
/// </summary>
public sealed class OverlayRepositories(IStorageDriver driver, IOptions<RegistryOptions> options, TimeProvider time,
    ILogger<OverlayRepositories> logger)
{
    private sealed class Entry(HashSet<string> names, DateTimeOffset readAt)
    {
        public HashSet<string> Names { get; } = names;
        public DateTimeOffset ReadAt { get; } = readAt;
    }

    private readonly ConcurrentDictionary<Overlay, Entry> entries = new();

    // Every read through a view asks each overlay of its queue: when an entry is due, one walk serves them all.
    private readonly SingleFlight<Overlay, Entry> walks = new();

    /// <summary>Whether <paramref name="repository"/> (a name in an overlay) may hold anything; false only when it surely holds nothing.</summary>
    public async Task<bool> MayHoldAsync(RepositoryName repository, CancellationToken cancellationToken)
    {
        if (repository.Overlay is not { } overlay) return true;
        var entry = await EntryAsync(overlay, cancellationToken);
        lock (entry.Names) return entry.Names.Contains(repository.Value);
    }

    /// <summary>
    /// <see cref="MayHoldAsync"/> answered from memory, without a task, when the overlay's entry is current (the case
    /// of nearly every read through a view); null when it is missing or due for a walk: then ask <see cref="MayHoldAsync"/>.
    /// </summary>
    public bool? TryMayHold(RepositoryName repository)
    {
        if (repository.Overlay is not { } overlay) return true;
        if (!entries.TryGetValue(overlay, out var entry) || !Usable(overlay, entry)) return null;
        lock (entry.Names) return entry.Names.Contains(repository.Value);
    }

    /// <summary>The repositories the overlay holds anything in, sorted.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(Overlay overlay, CancellationToken cancellationToken)
    {
        var entry = await EntryAsync(overlay, cancellationToken);
        lock (entry.Names) return entry.Names.Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Called before anything is written into <paramref name="repository"/> when it is in an overlay.</summary>
    public async Task MarkAsync(RepositoryName repository, CancellationToken cancellationToken)
    {
        if (repository.Overlay is not { } overlay) return;
        var entry = await EntryAsync(overlay, cancellationToken);
        while (true)
        {
            lock (entry.Names) entry.Names.Add(repository.Value);
            // A re-walk may have replaced the entry meanwhile, copying the names before ours was added: mark that one too.
            if (!entries.TryGetValue(overlay, out var current) || current == entry) return;
            entry = current;
        }
    }

    /// <summary>Forgets an overlay (deleted): it is walked again if asked about.</summary>
    public void Forget(Overlay overlay) => entries.TryRemove(overlay, out _);

    private async Task<Entry> EntryAsync(Overlay overlay, CancellationToken cancellationToken)
    {
        if (entries.TryGetValue(overlay, out var entry) && Usable(overlay, entry)) return entry;
        return await walks.RunAsync(overlay, () => RewalkAsync(overlay), cancellationToken);
    }

    /// <summary>Whether the entry may still be used; past half its life this also starts (or joins) a walk in the background.</summary>
    private bool Usable(Overlay overlay, Entry entry)
    {
        var age = time.GetUtcNow() - entry.ReadAt;
        var duration = options.Value.ChangeCacheDuration;
        if (age >= duration) return false;
        // A failure is not lost: a read once the entry is due walks in the foreground and gets it.
        if (age >= duration / 2)
            walks.RunInBackground(overlay, () => RewalkAsync(overlay), e => logger.LogDebug(e, "Background walk of overlay {Overlay} failed", overlay));
        return true;
    }

    private async Task<Entry> RewalkAsync(Overlay overlay)
    {
        var now = time.GetUtcNow();
        var names = await WalkAsync(RegistryPaths.OverlayRepositories(overlay), CancellationToken.None);
        // Marks made while walking must survive the replacement. Names only ever get added: a name that is no longer
        // there costs a storage read, a missing one would hide content.
        var fresh = new Entry(names, now);
        var current = entries.AddOrUpdate(overlay, fresh, (_, old) =>
        {
            lock (old.Names) names.UnionWith(old.Names);
            return fresh;
        });
        return current;
    }

    /// <summary>Repository names below <paramref name="root"/>: folders that hold a "_" folder of their own.</summary>
    private async Task<HashSet<string>> WalkAsync(string root, CancellationToken cancellationToken)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push("");
        while (pending.Count > 0)
        {
            var prefix = pending.Pop();
            var folder = prefix.Length == 0 ? root : $"{root}/{prefix}";
            foreach (var name in await driver.ListOrEmptyAsync(folder, cancellationToken))
            {
                if (name.StartsWith('_'))
                {
                    if (prefix.Length > 0) found.Add(prefix);
                    continue;
                }
                pending.Push(prefix.Length == 0 ? name : $"{prefix}/{name}");
            }
        }
        return found;
    }
}
