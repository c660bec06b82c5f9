using Microsoft.Extensions.Options;
using ShadowRegistry.Changes;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Ui;

/// <summary>Distinct blobs and their bytes in one part of the storage.</summary>
public sealed record UsageFigure(long Blobs, long Bytes);

/// <summary>What the storage holds, and which part references it: the base, live changes, the pull-through cache.</summary>
public sealed record UsageReport(DateTimeOffset MeasuredAt, TimeSpan Took, UsageFigure All, UsageFigure Base, UsageFigure Changes, UsageFigure Cache,
    UsageFigure Unreferenced);

/// <summary>
/// Measures the storage used for the health page by walking it: the blob store, and the blob and manifest links of
/// every base repository, every live change's overlay, and the pull-through cache. A blob referenced by several parts
/// counts in each. That walk reads the whole store, so it never runs in a request: the page shows the last
/// measurement and starts a new one in the background once it is older than <see cref="UiOptions.StorageUsageRefresh"/>.
/// </summary>
public sealed class StorageUsage(IStorageDriver driver, RepositoryCatalog catalog, ChangeService changes, OverlayRepositories overlays, BlobStore blobs,
    IOptions<UiOptions> options, TimeProvider time, ILogger<StorageUsage> logger)
{
    private readonly Lock gate = new();
    private UsageReport? last;
    private Task? running;

    /// <summary>The last measurement (null before the first one ends), starting a new one when it is due.</summary>
    public (UsageReport? Report, bool Measuring) Current()
    {
        lock (gate)
        {
            var due = last is null || time.GetUtcNow() - last.MeasuredAt >= options.Value.StorageUsageRefresh;
            if (due && running is null) running = Task.Run(MeasureAsync);
            return (last, running is not null);
        }
    }

    private async Task MeasureAsync()
    {
        var started = time.GetTimestamp();
        try
        {
            var sizes = new Dictionary<Digest, long>();
            foreach (var algorithm in await driver.ListOrEmptyAsync("/blobs", CancellationToken.None))
                foreach (var prefix in await driver.ListOrEmptyAsync($"/blobs/{algorithm}", CancellationToken.None))
                    foreach (var hex in await driver.ListOrEmptyAsync($"/blobs/{algorithm}/{prefix}", CancellationToken.None))
                        if (Digest.TryParse($"{algorithm}:{hex}", out var digest) && await blobs.GetSizeAsync(digest, CancellationToken.None) is { } size)
                            sizes[digest] = size;

            var baseBlobs = new HashSet<Digest>();
            var cacheBlobs = new HashSet<Digest>();
            foreach (var name in await catalog.ListAsync(CancellationToken.None))
            {
                if (!RepositoryName.TryParse(name, out var repository)) continue;
                await CollectAsync(RegistryPaths.Repository(repository), baseBlobs, cacheBlobs);
            }
            var changeBlobs = new HashSet<Digest>();
            foreach (var change in await changes.ListAsync(new Dictionary<string, string>(), CancellationToken.None))
                foreach (var name in await overlays.ListAsync(change.Overlay, CancellationToken.None))
                    if (RepositoryName.TryParse(name, out var repository))
                        await CollectAsync(RegistryPaths.Repository(repository.In(change.Overlay)), changeBlobs, cacheBlobs);

            UsageFigure Figure(IEnumerable<Digest> digests)
            {
                long count = 0, bytes = 0;
                foreach (var digest in digests)
                {
                    if (!sizes.TryGetValue(digest, out var size)) continue; // linked, but its bytes are not (yet) in the store
                    count++;
                    bytes += size;
                }
                return new UsageFigure(count, bytes);
            }
            var referenced = new HashSet<Digest>(baseBlobs);
            referenced.UnionWith(changeBlobs);
            referenced.UnionWith(cacheBlobs);
            var report = new UsageReport(time.GetUtcNow(), time.GetElapsedTime(started), Figure(sizes.Keys), Figure(baseBlobs), Figure(changeBlobs),
                Figure(cacheBlobs), Figure(sizes.Keys.Where(d => !referenced.Contains(d))));
            lock (gate) last = report;
        }
        catch (Exception e)
        {
            logger.LogWarning("Measuring the storage used failed: {Reason}", e.Message);
        }
        finally
        {
            lock (gate) running = null;
        }
    }

    /// <summary>The digests of a repository folder's layer links and manifest revisions, and of its cache links.</summary>
    private async Task CollectAsync(string folder, HashSet<Digest> linked, HashSet<Digest> cached)
    {
        foreach (var (path, into) in new[] { ($"{folder}/_layers", linked), ($"{folder}/_manifests/revisions", linked), ($"{folder}/_cache", cached) })
            foreach (var algorithm in await driver.ListOrEmptyAsync(path, CancellationToken.None))
                foreach (var hex in await driver.ListOrEmptyAsync($"{path}/{algorithm}", CancellationToken.None))
                    if (Digest.TryParse($"{algorithm}:{hex}", out var digest)) into.Add(digest);
    }
}
