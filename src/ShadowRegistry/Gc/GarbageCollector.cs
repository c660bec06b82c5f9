using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;
using ShadowRegistry.Changes;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Gc;

/// <summary>One thing a collection removed (or, in a dry run, would remove).</summary>
public sealed record GcItem(string Kind, string What, long Bytes);

/// <summary>What one collection did: per kind, how many and how many bytes; and every item.</summary>
public sealed class GcReport
{
    public static readonly string[] Kinds = ["overlays", "uploads", "tags", "manifests", "cache_links", "blobs"];

    public bool DryRun { get; init; }

    /// <summary>True when another process held the lease and nothing was done.</summary>
    public bool Skipped { get; set; }

    public Dictionary<string, (long Count, long Bytes)> Removed { get; } = Kinds.ToDictionary(k => k, _ => (0L, 0L));

    public ConcurrentQueue<GcItem> Items { get; } = new();

    /// <summary>Blobs reachable from a tag, a young untagged manifest or the cache, and unreachable ones kept for the grace period.</summary>
    public long BlobsMarked { get; set; }

    public long BlobsInGrace { get; set; }

    public TimeSpan Duration { get; set; }

    public long BytesFreed => Removed.Values.Sum(v => v.Bytes);

    internal void Add(string kind, string what, long bytes = 0, long count = 1)
    {
        lock (Removed)
        {
            var (c, b) = Removed[kind];
            Removed[kind] = (c + count, b + bytes);
        }
        Items.Enqueue(new GcItem(kind, what, bytes));
    }
}

/// <summary>
/// Online mark-and-sweep garbage collection over the storage driver (docs/gc.md). Retention first (expired changes'
/// overlays, abandoned uploads, old tags by rule), then mark: every blob reachable from the tags of the base namespace
/// and of every live change's overlay, through index children, configs, layers and the referrers of what is kept, plus
/// untagged manifests younger than the configured age and the kept part of the upstream blob cache. Then sweep every
/// other blob whose last recorded use is older than the grace period, each under a claim made by a conditional write
/// on its use record (<see cref="BlobTouches"/>), which is what keeps concurrent pushes safe in any number of processes.
/// </summary>
public sealed class GarbageCollector(
    IStorageDriver driver,
    BlobTouches touches,
    TagStore tags,
    ManifestRevisions revisions,
    ReferrerIndex referrers,
    RepositoryCatalog catalog,
    UploadStore uploads,
    ChangeService changes,
    ChangeStore changeStore,
    IReplicationQueue replication,
    IOptions<RegistryOptions> options,
    TimeProvider time,
    RegistryMetrics metrics,
    ILogger<GarbageCollector> logger)
{
    /// <summary>Unmarked blobs of one folder swept together: each step is made durable once per batch (claims are held through it, a few seconds at most).</summary>
    private const int SweepBatch = 256;

    /// <summary>What the scan found, by digest: where each manifest is recorded, linked, cached, and who refers to it.</summary>
    private sealed class Scan
    {
        public readonly ConcurrentDictionary<Digest, ConcurrentBag<RepositoryName>> Revisions = new();
        public readonly ConcurrentDictionary<Digest, ConcurrentBag<Digest>> ReferrersOf = new();
        public readonly ConcurrentDictionary<Digest, ConcurrentBag<(RepositoryName Repository, Digest Subject)>> ReferrerEntries = new();
        public readonly ConcurrentDictionary<Digest, ConcurrentBag<RepositoryName>> Links = new();
        public readonly ConcurrentDictionary<Digest, ConcurrentBag<RepositoryName>> Cached = new();
        public readonly ConcurrentBag<Digest> Tagged = [];

        public static void Add<T>(ConcurrentDictionary<Digest, ConcurrentBag<T>> map, Digest digest, T value) =>
            map.GetOrAdd(digest, _ => []).Add(value);
    }

    /// <summary>One collection. With <paramref name="dryRun"/> nothing is changed and the report says what would go.</summary>
    public async Task<GcReport> RunAsync(bool dryRun, CancellationToken cancellationToken)
    {
        var report = new GcReport { DryRun = dryRun };
        var began = time.GetTimestamp();
        var started = time.GetUtcNow();
        var lease = dryRun ? null : await AcquireLeaseAsync(cancellationToken);
        if (!dryRun && lease is null)
        {
            report.Skipped = true;
            logger.LogInformation("Garbage collection skipped: another process holds the lease");
            metrics.GcRun("skipped", TimeSpan.Zero, started.ToUnixTimeSeconds());
            return report;
        }
        try
        {
            await CollectAsync(report, started, cancellationToken);
            report.Duration = time.GetElapsedTime(began);
            if (!dryRun)
            {
                foreach (var (kind, (count, bytes)) in report.Removed) metrics.GcRemoved(kind, count, bytes);
                metrics.GcRun("completed", report.Duration, started.ToUnixTimeSeconds());
            }
            logger.LogInformation(
                "Garbage collection {Mode} in {Duration}: {Blobs} blobs ({BlobBytes} bytes), {Manifests} manifests, {Tags} tags, {Overlays} overlays, "
                + "{Uploads} uploads ({UploadBytes} bytes), {CacheLinks} cache links; {Marked} blobs in use, {InGrace} kept for the grace period",
                dryRun ? "dry run" : "done", report.Duration, report.Removed["blobs"].Count, report.Removed["blobs"].Bytes, report.Removed["manifests"].Count,
                report.Removed["tags"].Count, report.Removed["overlays"].Count, report.Removed["uploads"].Count, report.Removed["uploads"].Bytes,
                report.Removed["cache_links"].Count, report.BlobsMarked, report.BlobsInGrace);
            return report;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            if (!dryRun) metrics.GcRun("failed", time.GetElapsedTime(began), started.ToUnixTimeSeconds());
            throw;
        }
        finally
        {
            if (lease is not null) await ReleaseLeaseAsync(lease, CancellationToken.None);
        }
    }

    private async Task CollectAsync(GcReport report, DateTimeOffset started, CancellationToken cancellationToken)
    {
        var gc = options.Value.Gc;
        var dryRun = report.DryRun;

        // Retention that needs no marking.
        var overlays = await changes.CleanUpAsync(dryRun, cancellationToken);
        if (overlays > 0) report.Add("overlays", $"{overlays} overlay(s) of expired or deleted changes", count: overlays);
        var (abandoned, uploadBytes) = await uploads.PurgeAbandonedAsync(options.Value.UploadExpiry, dryRun, cancellationToken);
        if (abandoned > 0) report.Add("uploads", $"{abandoned} abandoned upload session(s)", uploadBytes, abandoned);

        // Scan: live overlays before the base, so a promotion (which writes the base, then the change is deleted) is
        // seen in one place or the other.
        var scan = new Scan();
        foreach (var id in await changeStore.ListIdsAsync(cancellationToken))
        {
            var stored = await changeStore.GetAsync(id, cancellationToken, fresh: true);
            if (stored is null || stored.Record.IsExpired(started)) continue;
            var overlay = stored.Record.Overlay;
            await ScanRootAsync(RegistryPaths.OverlayRepositories(overlay), name => RepositoryName.TryParse(name, out var r) ? r.In(overlay) : null,
                scan, report, cancellationToken);
        }
        await ScanRootAsync(RegistryPaths.Repositories, name => RepositoryName.TryParse(name, out var r) ? r : null, scan, report, cancellationToken);

        // Mark from the tags, then from the untagged manifests young enough to keep.
        var manifests = new ConcurrentDictionary<Digest, byte>();
        var blobs = new ConcurrentDictionary<Digest, byte>();
        await MarkAsync(scan.Tagged.Distinct().ToList(), scan, manifests, blobs, cancellationToken);
        var young = new ConcurrentBag<Digest>();
        await Parallel.ForEachAsync(scan.Revisions.Where(r => !manifests.ContainsKey(r.Key)), Options(cancellationToken), async (entry, ct) =>
        {
            if (gc.UntaggedAfter is not { } age)
            {
                young.Add(entry.Key);
                return;
            }
            foreach (var repository in entry.Value)
            {
                var info = await driver.TryStatAsync(RegistryPaths.ManifestRevision(repository, entry.Key), ct);
                if (info is not null && started - info.ModifiedTime < age)
                {
                    young.Add(entry.Key);
                    return;
                }
            }
        });
        await MarkAsync(young.Distinct().ToList(), scan, manifests, blobs, cancellationToken);
        await RetainCacheAsync(scan, blobs, report, started, cancellationToken);
        report.BlobsMarked = blobs.Count;

        // Sweep what nothing reaches and nobody used within the grace period (measured from the start of this run,
        // before anything was scanned).
        var cutoff = started - gc.GracePeriod - gc.TouchResolution;
        long inGrace = 0;
        var folders = new List<string>();
        foreach (var algorithm in await driver.ListOrEmptyAsync("/blobs", cancellationToken))
        foreach (var prefix in await driver.ListOrEmptyAsync($"/blobs/{algorithm}", cancellationToken))
            folders.Add($"{algorithm}/{prefix}");
        // Folders in parallel, each one's blobs in turn: the use records of one folder's blobs share a lock file
        // (RegistryPaths.LockOf), so sweeping one folder from several workers would only make them queue for it.
        await Parallel.ForEachAsync(folders, Options(cancellationToken), async (folder, ct) =>
        {
            var algorithm = folder[..folder.IndexOf('/')];
            var unmarked = new List<Digest>();
            foreach (var hex in await driver.ListOrEmptyAsync($"/blobs/{folder}", ct))
                if (Digest.TryParse($"{algorithm}:{hex}", out var digest) && !blobs.ContainsKey(digest)) unmarked.Add(digest);
            foreach (var batch in unmarked.Chunk(SweepBatch)) Interlocked.Add(ref inGrace, await SweepAsync(batch, scan, cutoff, report, ct));
        });
        report.BlobsInGrace = inGrace;
    }

    /// <summary>Every repository below <paramref name="root"/>: its tags (retention applied), records, referrers and links.</summary>
    private async Task ScanRootAsync(string root, Func<string, RepositoryName?> parse, Scan scan, GcReport report, CancellationToken cancellationToken)
    {
        var repositories = new List<RepositoryName>();
        var pending = new Stack<string>();
        pending.Push("");
        while (pending.Count > 0)
        {
            var prefix = pending.Pop();
            var found = false;
            foreach (var name in await driver.ListOrEmptyAsync(prefix.Length == 0 ? root : $"{root}/{prefix}", cancellationToken))
            {
                if (!name.StartsWith('_')) pending.Push(prefix.Length == 0 ? name : $"{prefix}/{name}");
                else if (!found && prefix.Length > 0 && parse(prefix) is { } repository)
                {
                    found = true;
                    repositories.Add(repository);
                }
            }
        }
        await Parallel.ForEachAsync(repositories, Options(cancellationToken), (repository, ct) => new ValueTask(ScanRepositoryAsync(repository, scan, report, ct)));
    }

    private async Task ScanRepositoryAsync(RepositoryName repository, Scan scan, GcReport report, CancellationToken cancellationToken)
    {
        var rules = repository.Overlay is null ? RulesFor(repository) : [];
        foreach (var tag in await tags.ListAsync(repository, cancellationToken))
        {
            if (await tags.ResolveAsync(repository, tag, cancellationToken) is not { } digest) continue;
            if (rules.Count > 0 && await driver.TryStatAsync(RegistryPaths.Tag(repository, tag), cancellationToken) is { } info
                && rules.Any(age => time.GetUtcNow() - info.ModifiedTime >= age)
                && (report.DryRun || await tags.DeleteIfAsync(repository, tag, digest, cancellationToken)))
            {
                report.Add("tags", $"{repository}:{tag} ({digest})");
                if (!report.DryRun)
                {
                    await catalog.RemovedAsync(repository);
                    replication.TagChanged(repository, tag);
                }
                continue;
            }
            scan.Tagged.Add(digest);
        }
        foreach (var digest in await DigestsAsync($"{RegistryPaths.ManifestsDirectory(repository)}/revisions", cancellationToken))
            Scan.Add(scan.Revisions, digest, repository);
        foreach (var digest in await DigestsAsync(RegistryPaths.LayersDirectory(repository), cancellationToken))
            Scan.Add(scan.Links, digest, repository);
        foreach (var digest in await DigestsAsync($"{RegistryPaths.Repository(repository)}/_cache", cancellationToken))
            Scan.Add(scan.Cached, digest, repository);
        var referrerRoot = $"{RegistryPaths.Repository(repository)}/_referrers";
        foreach (var subject in await DigestsAsync(referrerRoot, cancellationToken))
        foreach (var entry in await driver.ListOrEmptyAsync(RegistryPaths.ReferrersDirectory(repository, subject), cancellationToken))
        {
            var dash = entry.IndexOf('-');
            if (dash <= 0 || !Digest.TryParse($"{entry[..dash]}:{entry[(dash + 1)..]}", out var referrer)) continue;
            Scan.Add(scan.ReferrersOf, subject, referrer);
            Scan.Add(scan.ReferrerEntries, referrer, (repository, subject));
        }
    }

    /// <summary>The digests named by a folder of "&lt;algorithm&gt;/&lt;hex&gt;" entries.</summary>
    private async Task<List<Digest>> DigestsAsync(string folder, CancellationToken cancellationToken)
    {
        var result = new List<Digest>();
        foreach (var algorithm in await driver.ListOrEmptyAsync(folder, cancellationToken))
        foreach (var hex in await driver.ListOrEmptyAsync($"{folder}/{algorithm}", cancellationToken))
            if (Digest.TryParse($"{algorithm}:{hex}", out var digest)) result.Add(digest);
        return result;
    }

    private List<TimeSpan> RulesFor(RepositoryName repository)
    {
        var result = new List<TimeSpan>();
        foreach (var rule in options.Value.Gc.TagRetention)
            if (rule.Repositories.Any(text => RepositoryPattern.TryParse(text, out var pattern) && pattern.Matches(repository.Value))) result.Add(rule.OlderThan);
        return result;
    }

    /// <summary>
    /// Marks the manifests <paramref name="roots"/>, and everything they reach: children, configs, layers, and the
    /// referrers of every manifest marked, read level by level (each level's manifests in parallel).
    /// </summary>
    private async Task MarkAsync(IReadOnlyCollection<Digest> roots, Scan scan, ConcurrentDictionary<Digest, byte> manifests,
        ConcurrentDictionary<Digest, byte> blobs, CancellationToken cancellationToken)
    {
        var level = roots.Where(d => manifests.TryAdd(d, 0)).ToList();
        while (level.Count > 0)
        {
            var next = new ConcurrentBag<Digest>();
            await Parallel.ForEachAsync(level, Options(cancellationToken), async (manifest, ct) =>
            {
                blobs.TryAdd(manifest, 0);
                if (scan.ReferrersOf.TryGetValue(manifest, out var referring))
                    foreach (var referrer in referring) if (manifests.TryAdd(referrer, 0)) next.Add(referrer);
                if (await ParseAsync(manifest, scan, ct) is not { } parsed) return;
                foreach (var (blob, _) in parsed.Blobs) blobs.TryAdd(blob, 0);
                foreach (var (child, _) in parsed.Manifests) if (manifests.TryAdd(child, 0)) next.Add(child);
            });
            level = [.. next];
        }
    }

    /// <summary>What a stored manifest references, or null when its bytes are not here (an upstream's) or are no manifest.</summary>
    private async Task<ParsedManifest?> ParseAsync(Digest manifest, Scan scan, CancellationToken cancellationToken)
    {
        var content = await driver.TryGetContentAsync(RegistryPaths.Blob(manifest), cancellationToken);
        if (content is null) return null;
        try
        {
            return ManifestParser.Parse(content, null);
        }
        catch (ManifestInvalidException)
        {
            // Some manifests only parse with the media type they were pushed with (a Docker one without "mediaType").
            if (scan.Revisions.TryGetValue(manifest, out var where) && where.FirstOrDefault() is { } repository
                && await revisions.GetAsync(repository, manifest, cancellationToken) is { } revision)
            {
                try
                {
                    return ManifestParser.Parse(content, revision.MediaType);
                }
                catch (ManifestInvalidException)
                {
                }
            }
            logger.LogWarning("Garbage collection cannot parse manifest {Digest}; what it references is not kept for it", manifest);
            return null;
        }
    }

    /// <summary>
    /// Keeps the cached upstream blobs within the configured age and size (least recently used go first) and marks
    /// them; the cache links of the others are removed, so their bytes can be swept.
    /// </summary>
    private async Task RetainCacheAsync(Scan scan, ConcurrentDictionary<Digest, byte> blobs, GcReport report, DateTimeOffset started, CancellationToken cancellationToken)
    {
        var gc = options.Value.Gc;
        if (gc.CacheMaxAge is null && gc.CacheMaxBytes is null)
        {
            foreach (var digest in scan.Cached.Keys) blobs.TryAdd(digest, 0);
            return;
        }
        var entries = new ConcurrentBag<(Digest Digest, DateTimeOffset LastUse, long Size)>();
        await Parallel.ForEachAsync(scan.Cached.Keys, Options(cancellationToken), async (digest, ct) =>
        {
            if (await driver.TryStatAsync(RegistryPaths.Blob(digest), ct) is not { } info) return;
            var stamp = await touches.ReadAsync(digest, ct);
            entries.Add((digest, stamp is { IsClaim: false } ? stamp.At : info.ModifiedTime, info.Size));
        });
        long total = 0;
        // Most recently used first: whatever no longer fits, or is too old, goes.
        foreach (var (digest, lastUse, size) in entries.OrderByDescending(e => e.LastUse))
        {
            var fits = (gc.CacheMaxAge is not { } age || started - lastUse < age) && (gc.CacheMaxBytes is not { } max || total + size <= max);
            if (fits)
            {
                total += size;
                blobs.TryAdd(digest, 0);
                continue;
            }
            foreach (var repository in scan.Cached[digest])
            {
                if (!report.DryRun && !await driver.TryDeleteAsync(RegistryPaths.CacheLink(repository, digest), cancellationToken)) continue;
                report.Add("cache_links", $"{repository}@{digest} (cached, last used {lastUse:u})");
            }
            scan.Cached.TryRemove(digest, out _);
        }
    }

    /// <summary>A blob being swept: the claim on it, and whether its bytes are gone.</summary>
    private sealed class Sweeping(Digest digest, StorageFileInfo info, BlobTouches.Claim claim, DateTimeOffset lastUse)
    {
        public Digest Digest { get; } = digest;
        public StorageFileInfo Info { get; } = info;
        public BlobTouches.Claim Claim { get; } = claim;
        public DateTimeOffset LastUse { get; } = lastUse;
        public bool Deleted { get; set; }
    }

    /// <summary>
    /// Sweeps a batch of unmarked blobs, each unless it was used within the grace period, in four steps, each made
    /// durable for the whole batch before the next begins (<see cref="DeferredSync"/>: one folder sync per folder and
    /// step rather than several per blob), so a crash leaves the same states as sweeping one blob at a time would:
    /// claim each; remove the records, referrer entries and links that name the claimed ones; delete the bytes of
    /// those still claimed; end the claims. Returns how many were kept for the grace period.
    /// </summary>
    private async Task<long> SweepAsync(IReadOnlyList<Digest> batch, Scan scan, DateTimeOffset cutoff, GcReport report, CancellationToken cancellationToken)
    {
        long kept = 0;
        var claimed = new List<Sweeping>();
        try
        {
            await DeferredSync.RunAsync(async () =>
            {
                foreach (var digest in batch)
                {
                    var (sweeping, inGrace) = await ClaimAsync(digest, scan, cutoff, report, cancellationToken);
                    if (sweeping is not null) claimed.Add(sweeping);
                    if (inGrace) kept++;
                }
            });
            if (report.DryRun || claimed.Count == 0) return kept;
            await DeferredSync.RunAsync(async () =>
            {
                foreach (var sweeping in claimed) await UnlinkAsync(sweeping.Digest, scan, report, cancellationToken);
            });
            await DeferredSync.RunAsync(async () =>
            {
                foreach (var sweeping in claimed)
                {
                    // Only while the claim still stands: a writer may have taken over a claim it found stale.
                    if (!await touches.HoldsAsync(sweeping.Claim, cancellationToken)
                        || !await driver.TryDeleteAsync(RegistryPaths.Blob(sweeping.Digest), cancellationToken)) continue;
                    sweeping.Deleted = true;
                    report.Add("blobs", $"{sweeping.Digest}", sweeping.Info.Size);
                    logger.LogDebug("Swept blob {Digest} ({Size} bytes), last used {LastUse:O}", sweeping.Digest, sweeping.Info.Size, sweeping.LastUse);
                }
            });
        }
        finally
        {
            // Also when a step failed: a claim left standing would make its blob look missing until it went stale.
            if (claimed.Count > 0)
                await DeferredSync.RunAsync(async () =>
                {
                    foreach (var sweeping in claimed)
                    {
                        try
                        {
                            await touches.ReleaseAsync(sweeping.Claim, sweeping.Deleted, CancellationToken.None);
                        }
                        catch (StorageDriverException e)
                        {
                            // The others are still ended; this one goes stale by itself (docs/gc.md).
                            logger.LogWarning(e, "Could not end the collection's claim on {Digest}", sweeping.Digest);
                        }
                    }
                });
        }
        return kept;
    }

    /// <summary>
    /// Claims an unmarked blob for deletion. No claim when it is gone or another collection's, nor in a dry run (which
    /// reports what would go); none and kept (InGrace) when it was used within the grace period or a use got there first.
    /// </summary>
    private async Task<(Sweeping? Claimed, bool InGrace)> ClaimAsync(Digest digest, Scan scan, DateTimeOffset cutoff, GcReport report,
        CancellationToken cancellationToken)
    {
        if (await driver.TryStatAsync(RegistryPaths.Blob(digest), cancellationToken) is not { IsDirectory: false } info) return (null, false);
        var stamp = await touches.ReadAsync(digest, cancellationToken);
        if (stamp is { IsClaim: true } && time.GetUtcNow() - stamp.At < touches.StaleClaim) return (null, false); // another collection's
        var lastUse = stamp is { IsClaim: false } ? stamp.At : info.ModifiedTime;
        if (lastUse > cutoff) return (null, true);
        if (report.DryRun)
        {
            foreach (var repository in Recorded(digest, scan)) report.Add("manifests", $"{repository}@{digest}");
            report.Add("blobs", $"{digest}", info.Size);
            return (null, false);
        }
        // Not cancellable: a claim written but not yet returned (a cancelled read-back) would never be ended.
        return await touches.TryClaimAsync(digest, stamp, CancellationToken.None) is { } claim ? (new Sweeping(digest, info, claim, lastUse), false) : (null, true);
    }

    /// <summary>Removes the manifest records, referrer entries, layer links and cache links that name a claimed blob.</summary>
    private async Task UnlinkAsync(Digest digest, Scan scan, GcReport report, CancellationToken cancellationToken)
    {
        foreach (var repository in Recorded(digest, scan))
        {
            if (!await revisions.DeleteAsync(repository, digest, cancellationToken)) continue;
            report.Add("manifests", $"{repository}@{digest}");
            await catalog.RemovedAsync(repository);
        }
        if (scan.ReferrerEntries.TryGetValue(digest, out var entries))
            foreach (var (repository, subject) in entries) await referrers.RemoveAsync(repository, subject, digest, cancellationToken);
        if (scan.Links.TryGetValue(digest, out var linked))
            foreach (var repository in linked) await driver.TryDeleteAsync(RegistryPaths.LayerLink(repository, digest), cancellationToken);
        if (scan.Cached.TryGetValue(digest, out var cached))
            foreach (var repository in cached) await driver.TryDeleteAsync(RegistryPaths.CacheLink(repository, digest), cancellationToken);
    }

    private static List<RepositoryName> Recorded(Digest digest, Scan scan) =>
        scan.Revisions.TryGetValue(digest, out var where) ? where.Distinct().ToList() : [];

    /// <summary>The store-wide lease (a conditional write), so two processes sharing the store do not collect at once; null when held elsewhere.</summary>
    private async Task<StorageVersion?> AcquireLeaseAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var content = JsonSerializer.SerializeToUtf8Bytes(new GcLease($"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}",
            now + options.Value.Gc.LeaseDuration), GcJson.Default.GcLease);
        var current = await driver.GetVersionedAsync(RegistryPaths.GcLease, cancellationToken);
        GcLease? held = null;
        try
        {
            held = current is null ? null : JsonSerializer.Deserialize(current.Content, GcJson.Default.GcLease);
        }
        catch (JsonException)
        {
            // Unreadable: as if expired.
        }
        if (held is not null && held.Until > now) return null;
        var written = current is null
            ? await driver.PutIfAbsentAsync(RegistryPaths.GcLease, content, cancellationToken)
            : await driver.PutIfVersionMatchesAsync(RegistryPaths.GcLease, content, current.Version, cancellationToken);
        if (!written) return null;
        var stored = await driver.GetVersionedAsync(RegistryPaths.GcLease, cancellationToken);
        return stored is not null && stored.Content.AsSpan().SequenceEqual(content) ? stored.Version : null;
    }

    private async Task ReleaseLeaseAsync(StorageVersion lease, CancellationToken cancellationToken)
    {
        try
        {
            await driver.DeleteIfVersionMatchesAsync(RegistryPaths.GcLease, lease, cancellationToken);
        }
        catch (IOException e)
        {
            logger.LogWarning(e, "Could not release the garbage collection lease; it expires by itself");
        }
    }

    private ParallelOptions Options(CancellationToken cancellationToken) =>
        new() { MaxDegreeOfParallelism = options.Value.Gc.Parallelism, CancellationToken = cancellationToken };
}

/// <summary>The store-wide collection lease: who holds it and until when.</summary>
internal sealed record GcLease(string Owner, DateTimeOffset Until);

/// <summary>The lease as JSON by generated code, not reflection (the Native AOT build has none).</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(GcLease))]
internal sealed partial class GcJson : System.Text.Json.Serialization.JsonSerializerContext;
