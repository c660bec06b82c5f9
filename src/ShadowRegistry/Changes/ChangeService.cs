using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Changes;

/// <summary>A change as a read through it sees the queue: its own overlay first, then the live changes ahead, nearest first.</summary>
public sealed record ChangeView(ChangeRecord Change, IReadOnlyList<ChangeRecord> Ahead, IReadOnlyList<SkippedChange> Skipped)
{
    /// <summary>The overlays of <see cref="Layers"/>, in the same order, made once per view (a view serves many requests).</summary>
    public IReadOnlyList<Overlay> Overlays { get; } = [Change.Overlay, .. Ahead.Select(a => a.Overlay)];

    public ChangeId Id => Overlays[0].Change;

    /// <summary>Every overlay a read looks in, in order: the change's own, then those ahead.</summary>
    public IEnumerable<ChangeRecord> Layers => Ahead.Prepend(Change);
}

/// <summary>A change in "ahead" that a view skips, and why ("deleted" or "expired").</summary>
public sealed record SkippedChange(string Id, string Reason);

/// <summary>A tag a change holds: its repository's local name, the digest, and the bytes no other layer references.</summary>
public sealed record ChangeTag(string Repository, string Tag, string Digest, long UniqueBytes);

/// <summary>What a promotion did to one base tag; Changed is false when it already held the digest.</summary>
public sealed record PromotedTag(string Repository, string Tag, string Digest, string? Previous, bool Changed);

/// <summary>
/// Speculative changes: creating, updating, listing and deleting them, the view a request reads through, and the
/// promotion of a merged change's tags into the base namespace (metadata only: records, links and tags; the bytes
/// are already in the shared blob store).
/// </summary>
public sealed class ChangeService(
    ChangeStore store,
    OverlayRepositories overlays,
    TagStore tags,
    ManifestRevisions revisions,
    BlobLinks links,
    BlobStore blobs,
    ReferrerIndex referrers,
    RepositoryCatalog catalog,
    IOptions<ChangeOptions> options,
    TimeProvider time,
    IReplicationQueue replication,
    ILogger<ChangeService> logger)
{
    /// <summary>Creates the change (true) or updates it (false). Fields left null keep their value (or get the default on creation).</summary>
    /// <param name="credentialHash">The hash of a credential issued with this request (<see cref="ChangeCredentials"/>), replacing any earlier one; null keeps it.</param>
    public async Task<(ChangeRecord Record, bool Created)> PutAsync(ChangeId id, IReadOnlyList<string>? ahead, TimeSpan? ttl,
        IReadOnlyDictionary<string, string>? labels, CancellationToken cancellationToken, string? credentialHash = null)
    {
        if (ttl is { } requested && (requested <= TimeSpan.Zero || requested > options.Value.MaxTtl))
            throw new ChangeInvalidException($"ttl must be positive and at most {options.Value.MaxTtl}");
        List<string>? queue = null;
        if (ahead is not null)
        {
            queue = [];
            foreach (var entry in ahead)
            {
                var other = ChangeId.Parse(entry);
                if (other == id) throw new ChangeInvalidException($"change {id} cannot be ahead of itself");
                if (!queue.Contains(other.Value)) queue.Add(other.Value);
            }
            await RejectCycleAsync(id, queue, cancellationToken);
        }
        while (true)
        {
            var now = time.GetUtcNow();
            var current = await store.GetAsync(id, cancellationToken, fresh: true);
            var live = current is { } c && !c.Record.IsExpired(now) ? c.Record : null;
            var record = live is null
                ? new ChangeRecord(id.Value, $"g{Guid.NewGuid():N}", queue ?? [], labels ?? new Dictionary<string, string>(),
                    now, now + (ttl ?? options.Value.DefaultTtl))
                : live with
                {
                    Ahead = queue ?? live.Ahead,
                    Labels = labels ?? live.Labels,
                    ExpiresAt = ttl is { } t ? now + t : live.ExpiresAt,
                };
            if (credentialHash is not null) record = record with { CredentialHash = credentialHash };
            if (!await store.TryPutAsync(record, current?.Version, cancellationToken)) continue;
            if (current is not null && live is null)
            {
                // An expired incarnation replaced: its overlay goes now rather than at the next clean-up.
                await RemoveOverlayAsync(current.Record.Overlay, cancellationToken);
            }
            logger.LogInformation("{Action} change {ChangeId}: ahead [{Ahead}], expires {ExpiresAt:O}",
                live is null ? "Created" : "Updated", id, string.Join(", ", record.Ahead), record.ExpiresAt);
            return (record, live is null);
        }
    }

    /// <summary>The live change, or <see cref="ChangeUnknownException"/> (saying whether it expired).</summary>
    public async Task<ChangeRecord> GetLiveAsync(ChangeId id, CancellationToken cancellationToken, bool fresh = false)
    {
        var stored = await store.GetAsync(id, cancellationToken, fresh) ?? throw new ChangeUnknownException(id);
        if (stored.Record.IsExpired(time.GetUtcNow())) throw new ChangeUnknownException(id, expired: true);
        return stored.Record;
    }

    /// <summary>
    /// A view as built, kept while every record it was built from may still be used and is still live
    /// (<paramref name="ValidUntil"/>); from <paramref name="RefreshAfter"/> on, a request still gets it but also
    /// starts a rebuild in the background.
    /// </summary>
    private sealed record CachedView(Task<ChangeView> View, long Writes, DateTimeOffset ValidUntil, DateTimeOffset RefreshAfter);

    private readonly ConcurrentDictionary<ChangeId, CachedView> views = new();

    // Keyed by the write count too: a request that follows a write of this process never joins a build that began
    // before it, so own updates are still seen at once.
    private readonly SingleFlight<(ChangeId Id, long Writes), ChangeView> rebuilds = new();

    /// <summary>
    /// The view a request through <paramref name="id"/> reads: its own overlay, then the live changes ahead. Every
    /// request through a view asks for it, so a view is built once from the (cached) records and kept until the
    /// first of them would be read again (<see cref="ChangeStore.GetUntilAsync(ChangeId, CancellationToken, bool)"/>:
    /// the staleness bound is the records' own), one of its changes expires, or this process writes or deletes any
    /// change record. Halfway to that bound a request starts a rebuild in the background and goes on with the view
    /// it has, so under steady traffic no request waits for one; when it is due all the same (a quiet spell), the
    /// requests that find it so share one rebuild rather than each re-reading every record of the queue.
    /// </summary>
    public Task<ChangeView> ViewAsync(ChangeId id, CancellationToken cancellationToken)
    {
        var writes = store.Writes; // before any read: a write from now on makes what is built here out of date
        var now = time.GetUtcNow();
        if (views.TryGetValue(id, out var cached) && cached.Writes == writes && now < cached.ValidUntil)
        {
            // A failure is not lost: the next request past the view's bound rebuilds in the foreground and gets it.
            if (now >= cached.RefreshAfter)
                rebuilds.RunInBackground((id, writes), () => BuildViewAsync(id, writes, refresh: true, CancellationToken.None),
                    e => logger.LogDebug(e, "Background rebuild of change {ChangeId}'s view failed", id));
            return cached.View;
        }
        return rebuilds.RunAsync((id, writes), () => BuildViewAsync(id, writes, refresh: false, CancellationToken.None), cancellationToken);
    }

    /// <param name="refresh">
    /// A rebuild ahead of time: records read more than half the cache duration ago are read again, so the new
    /// view lasts at least that long; a rebuild of a due view takes cached records as they are.
    /// </param>
    private async Task<ChangeView> BuildViewAsync(ChangeId id, long writes, bool refresh, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var duration = store.CacheDuration;
        var maxAge = refresh ? duration / 2 : duration;
        var (stored, freshUntil) = await store.GetUntilAsync(id, maxAge, cancellationToken);
        if (stored is null || stored.Record.IsExpired(now))
        {
            views.TryRemove(id, out _);
            throw new ChangeUnknownException(id, expired: stored is not null);
        }
        var change = stored.Record;
        var validUntil = Min(freshUntil, change.ExpiresAt);
        var ahead = new List<ChangeRecord>();
        var skipped = new List<SkippedChange>();
        foreach (var entry in change.Ahead)
        {
            var (other, otherFreshUntil) = await store.GetUntilAsync(ChangeId.Parse(entry), maxAge, cancellationToken);
            freshUntil = Min(freshUntil, otherFreshUntil);
            validUntil = Min(validUntil, otherFreshUntil);
            if (other is null) skipped.Add(new SkippedChange(entry, "deleted"));
            else if (other.Record.IsExpired(now)) skipped.Add(new SkippedChange(entry, "expired"));
            else
            {
                ahead.Add(other.Record);
                validUntil = Min(validUntil, other.Record.ExpiresAt);
            }
        }
        var view = new ChangeView(change, ahead, skipped);
        // Refreshing goes by the records' freshness only: an expiry ahead is not brought nearer by reading again.
        views[id] = new CachedView(Task.FromResult(view), writes, validUntil, freshUntil - duration / 2);
        return view;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <summary>Live changes whose labels include every pair of <paramref name="labels"/>, by id.</summary>
    public async Task<IReadOnlyList<ChangeRecord>> ListAsync(IReadOnlyDictionary<string, string> labels, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var result = new List<ChangeRecord>();
        foreach (var id in await store.ListIdsAsync(cancellationToken))
        {
            if (await store.GetAsync(id, cancellationToken) is not { } stored || stored.Record.IsExpired(now)) continue;
            if (labels.All(pair => stored.Record.Labels.TryGetValue(pair.Key, out var value) && value == pair.Value)) result.Add(stored.Record);
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return result;
    }

    /// <summary>Deletes the change: it disappears at once; its overlay's metadata is removed now, its bytes by garbage collection.</summary>
    public async Task DeleteAsync(ChangeId id, CancellationToken cancellationToken)
    {
        while (true)
        {
            var stored = await store.GetAsync(id, cancellationToken, fresh: true) ?? throw new ChangeUnknownException(id);
            if (!await store.TryDeleteAsync(id, stored.Version, cancellationToken)) continue;
            views.TryRemove(id, out _);
            logger.LogInformation("Deleted change {ChangeId}", id);
            await RemoveOverlayAsync(stored.Record.Overlay, cancellationToken);
            if (stored.Record.IsExpired(time.GetUtcNow())) throw new ChangeUnknownException(id, expired: true);
            return;
        }
    }

    /// <summary>The tags the change holds, by repository and tag.</summary>
    public async Task<IReadOnlyList<ChangeTag>> TagsAsync(ChangeRecord change, CancellationToken cancellationToken) =>
        await TagsAsync(change, await ListAsync(new Dictionary<string, string>(), cancellationToken), cancellationToken);

    /// <summary>The tags the change holds, bytes counted against <paramref name="live"/> (the live changes, listed once for many calls).</summary>
    public async Task<IReadOnlyList<ChangeTag>> TagsAsync(ChangeRecord change, IReadOnlyList<ChangeRecord> live, CancellationToken cancellationToken)
    {
        var result = new List<ChangeTag>();
        var others = live.Where(c => c.Id != change.Id).ToList();
        foreach (var (repository, tag, digest) in await OverlayTagsAsync(change.Overlay, cancellationToken))
        {
            var unique = await UniqueBytesAsync(change, others, repository, digest, cancellationToken);
            result.Add(new ChangeTag(repository.Value, tag, digest.ToString(), unique));
        }
        return result;
    }

    /// <summary>
    /// Writes the change's tags (all, or <paramref name="selection"/>) into the base namespace: records and links of
    /// everything they reference, then each tag. Idempotent. Every expectation is checked before anything is
    /// written; one that does not hold refuses the whole promotion.
    /// </summary>
    public async Task<IReadOnlyList<PromotedTag>> PromoteAsync(ChangeId id, IReadOnlyList<(string Repository, string Tag)>? selection,
        IReadOnlyDictionary<string, string?>? expect, CancellationToken cancellationToken)
    {
        var change = await GetLiveAsync(id, cancellationToken, fresh: true);
        overlays.Forget(change.Overlay); // walk it afresh: a promotion must see every tag pushed, wherever
        var held = await OverlayTagsAsync(change.Overlay, cancellationToken);
        var chosen = held;
        if (selection is not null)
        {
            chosen = [];
            foreach (var (repository, tag) in selection)
            {
                var match = held.FirstOrDefault(h => h.Repository.Value == repository && h.Tag == tag);
                if (match.Repository is null) throw new ChangeInvalidException($"change {id} holds no tag {repository}:{tag}");
                chosen.Add(match);
            }
        }

        var mismatches = new List<PromotionMismatch>();
        foreach (var (key, expected) in expect ?? new Dictionary<string, string?>())
        {
            var (repository, tag) = ParseTagReference(key);
            var actual = (await tags.ResolveAsync(repository, tag, cancellationToken))?.ToString();
            var wanted = string.IsNullOrEmpty(expected) || expected == "null" ? null : expected;
            if (wanted != actual) mismatches.Add(new PromotionMismatch(repository.Value, tag, wanted, actual));
        }
        if (mismatches.Count > 0) throw new PromotionConflictException(mismatches);

        var result = new List<PromotedTag>();
        foreach (var (repository, tag, digest) in chosen)
        {
            var scoped = repository.In(change.Overlay);
            await CopyManifestAsync(scoped, repository, digest, depth: 0, cancellationToken);
            var previous = await tags.ResolveAsync(repository, tag, cancellationToken);
            if (previous != digest) await tags.SetAsync(repository, tag, digest, cancellationToken);
            await catalog.AddedAsync(repository);
            if (previous != digest) replication.TagChanged(repository, tag);
            result.Add(new PromotedTag(repository.Value, tag, digest.ToString(), previous?.ToString(), previous != digest));
            logger.LogInformation("Promoted {Repository}:{Tag} to {Digest} from change {ChangeId} (was {Previous})",
                repository, tag, digest, id, previous?.ToString() ?? "absent");
        }
        return result;
    }

    /// <summary>Removes overlays of deleted or expired changes and of replaced incarnations; returns how many went.</summary>
    public Task<int> CleanUpAsync(CancellationToken cancellationToken) => CleanUpAsync(dryRun: false, cancellationToken);

    /// <summary>As above; with <paramref name="dryRun"/> only counts the overlays that would go.</summary>
    public async Task<int> CleanUpAsync(bool dryRun, CancellationToken cancellationToken)
    {
        var removed = 0;
        var now = time.GetUtcNow();
        foreach (var id in await store.ListIdsAsync(cancellationToken))
        {
            var stored = await store.GetAsync(id, cancellationToken, fresh: true);
            if (dryRun)
            {
                var live = stored is not null && !stored.Record.IsExpired(now) ? stored.Record.Generation : null;
                removed += (await store.ListGenerationsAsync(id, cancellationToken)).Count(g => g != live);
                continue;
            }
            if (stored is not null && stored.Record.IsExpired(now))
            {
                // Expired: the overlay goes now. The record stays a while as a tombstone, so clients are told the
                // change expired rather than that it never existed; then it goes too, unless renewed meanwhile.
                overlays.Forget(stored.Record.Overlay);
                if (now - stored.Record.ExpiresAt >= options.Value.ExpiredRetention && await store.TryDeleteAsync(id, stored.Version, cancellationToken))
                    logger.LogInformation("Forgot change {ChangeId}, expired at {ExpiresAt:O}", id, stored.Record.ExpiresAt);
                stored = null;
            }
            if (stored is null)
            {
                views.TryRemove(id, out _);
            }
            var before = await store.ListGenerationsAsync(id, cancellationToken);
            var keep = stored?.Record.Generation;
            foreach (var generation in before.Where(g => g != keep))
            {
                await store.RemoveGenerationAsync(id, generation, cancellationToken);
                removed++;
            }
        }
        return removed;
    }

    private async Task RemoveOverlayAsync(Overlay overlay, CancellationToken cancellationToken)
    {
        overlays.Forget(overlay);
        try
        {
            await store.RemoveGenerationAsync(overlay.Change, overlay.Generation, cancellationToken);
        }
        catch (Exception e) when (e is IOException or Storage.Drivers.StorageDriverException)
        {
            // The periodic clean-up removes it later; the change is gone either way.
            logger.LogWarning("Overlay of change {ChangeId} not removed yet: {Reason}", overlay.Change, e.Message);
        }
    }

    /// <summary>Refuses an "ahead" list that would put the change behind itself through the live changes it names.</summary>
    private async Task RejectCycleAsync(ChangeId id, IReadOnlyList<string> ahead, CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<(string Id, string Path)>(ahead.Select(a => (a, $"{id} → {a}")));
        while (pending.Count > 0)
        {
            var (current, path) = pending.Pop();
            if (current == id.Value) throw new ChangeInvalidException($"cycle in ahead: {path}");
            if (!seen.Add(current) || !ChangeId.TryParse(current, out var other)) continue;
            var stored = await store.GetAsync(other, cancellationToken, fresh: true);
            if (stored is null || stored.Record.IsExpired(time.GetUtcNow())) continue;
            foreach (var next in stored.Record.Ahead) pending.Push((next, $"{path} → {next}"));
        }
    }

    /// <summary>Every (repository, tag, digest) in the overlay, repositories by their base names.</summary>
    private async Task<List<(RepositoryName Repository, string Tag, Digest Digest)>> OverlayTagsAsync(Overlay overlay, CancellationToken cancellationToken)
    {
        var result = new List<(RepositoryName, string, Digest)>();
        foreach (var name in await overlays.ListAsync(overlay, cancellationToken))
        {
            if (!RepositoryName.TryParse(name, out var repository)) continue;
            var scoped = repository.In(overlay);
            foreach (var tag in await tags.ListAsync(scoped, cancellationToken))
                if (await tags.ResolveAsync(scoped, tag, cancellationToken) is { } digest) result.Add((repository, tag, digest));
        }
        return result;
    }

    /// <summary>
    /// Copies what the base needs to serve <paramref name="digest"/> from the overlay: the record of the manifest and
    /// of its child manifests, links to its blobs, and the referrers pushed for it. Nothing the base has is rewritten.
    /// </summary>
    private async Task CopyManifestAsync(RepositoryName scoped, RepositoryName target, Digest digest, int depth, CancellationToken cancellationToken)
    {
        if (depth > 8) return; // indexes of indexes: deeper is not an image any client builds
        var revision = await revisions.GetAsync(scoped, digest, cancellationToken);
        var content = await blobs.TryReadAllBytesAsync(digest, cancellationToken);
        if (revision is null || content is null)
        {
            // Not the overlay's own (found in a layer below it when pushed): the base reads it where it always did.
            return;
        }
        var parsed = ManifestParser.Parse(content, revision.MediaType);
        foreach (var (blob, _) in parsed.Blobs)
            if (await links.GetSizeAsync(target, blob, cancellationToken) is null && await links.GetSizeAsync(scoped, blob, cancellationToken) is not null)
                await links.LinkAsync(target, blob, cancellationToken);
        foreach (var (child, _) in parsed.Manifests) await CopyManifestAsync(scoped, target, child, depth + 1, cancellationToken);
        if (await revisions.GetAsync(target, digest, cancellationToken) is null) await revisions.PutAsync(target, digest, revision, cancellationToken);
        if (depth == 0)
        {
            foreach (var referrer in await referrers.ListAsync(scoped, digest, cancellationToken))
            {
                var referrerDigest = Digest.Parse(referrer.Digest);
                await CopyManifestAsync(scoped, target, referrerDigest, depth + 1, cancellationToken);
                await referrers.AddAsync(target, digest, referrer, cancellationToken);
            }
        }
    }

    /// <summary>Bytes of the manifest and its blobs that neither the base repository nor another live change's overlay references.</summary>
    private async Task<long> UniqueBytesAsync(ChangeRecord change, IReadOnlyList<ChangeRecord> others, RepositoryName repository, Digest digest,
        CancellationToken cancellationToken)
    {
        var scoped = repository.In(change.Overlay);
        var revision = await revisions.GetAsync(scoped, digest, cancellationToken);
        var content = revision is null ? null : await blobs.TryReadAllBytesAsync(digest, cancellationToken);
        if (revision is null || content is null) return 0;
        var parts = new List<(Digest Digest, long Size)> { (digest, content.Length) };
        parts.AddRange(ManifestParser.Parse(content, revision.MediaType).Blobs);
        // The other overlays holding anything of this repository, asked once for all parts (usually few of many).
        var holders = new List<RepositoryName>();
        foreach (var other in others)
        {
            var elsewhere = repository.In(other.Overlay);
            if (overlays.TryMayHold(elsewhere) ?? await overlays.MayHoldAsync(elsewhere, cancellationToken)) holders.Add(elsewhere);
        }
        long unique = 0;
        foreach (var (part, size) in parts)
        {
            if (await links.GetSizeAsync(repository, part, cancellationToken) is not null) continue;
            var shared = false;
            foreach (var elsewhere in holders)
                if (await links.GetSizeAsync(elsewhere, part, cancellationToken) is not null) { shared = true; break; }
            if (!shared && await links.GetSizeAsync(scoped, part, cancellationToken) is not null) unique += size;
        }
        return unique;
    }

    /// <summary>"repository:tag", split at the last colon (names have none, tags have none).</summary>
    public static (RepositoryName Repository, string Tag) ParseTagReference(string value)
    {
        var colon = value.LastIndexOf(':');
        if (colon <= 0 || !RepositoryName.TryParse(value[..colon], out var repository) || !Tag.IsValid(value[(colon + 1)..]))
            throw new ChangeInvalidException($"'{value}' is not repository:tag");
        return (repository, value[(colon + 1)..]);
    }
}
