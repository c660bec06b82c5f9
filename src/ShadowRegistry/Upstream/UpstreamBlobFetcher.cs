using System.Collections.Concurrent;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Copies upstream blobs into local storage through a <see cref="BlobWriter"/>: downloaded into an object of their
/// own, verified, then published the same way as a push. Used by mounts from upstream-only repositories (<see cref="FetchAsync"/>)
/// and by pull-through caching, which streams the blob to the client while it is kept (<see cref="TryRelayAsync"/>).
/// </summary>
public sealed class UpstreamBlobFetcher(UpstreamClient upstream, BlobStore blobs, RegistryMetrics metrics, ILogger<UpstreamBlobFetcher> logger)
{
    private readonly SingleFlight<(string Repository, Digest Digest), long> inFlight = new(() => metrics.UpstreamCollapsed("blob"));
    private readonly ConcurrentDictionary<Digest, byte> relaying = new();

    /// <summary>
    /// Makes the blob present locally on the strength of this upstream repository having it, and returns its size;
    /// null when that repository does not have it. Bytes already held for some other repository count only once
    /// this repository's upstream confirms it has the same blob: the shared store must never lend one repository's
    /// content to another. One download per (repository, digest) at a time.
    /// </summary>
    public async Task<long?> FetchAsync(UpstreamRepository repository, Digest digest, CancellationToken cancellationToken)
    {
        if (await blobs.GetSizeAsync(digest, cancellationToken) is { } held)
            return await upstream.GetBlobSizeAsync(repository, digest, cancellationToken) == held ? held : null;
        // Not tied to the first requester: a client that gives up must not fail the others waiting on this download.
        return await inFlight.RunAsync((repository.ToString(), digest), () => DownloadAsync(repository, digest, null, CancellationToken.None), cancellationToken);
    }

    /// <summary>
    /// Streams the blob to the client while keeping a verified copy. Returns false, having sent nothing, when another
    /// request is already doing so for this digest (the caller then streams it without keeping it). Returns true
    /// once the blob is kept; if it fails after the response started, the connection is aborted so the client sees
    /// a broken download, and the exception is not rethrown.
    /// </summary>
    public async Task<bool> TryRelayAsync(UpstreamRepository repository, Digest digest, HttpContext context)
    {
        if (!relaying.TryAdd(digest, 0)) return false;
        try
        {
            await DownloadAsync(repository, digest, new BlobRelay(context.Response, digest.ToString(), context.RequestAborted), context.RequestAborted);
            return true;
        }
        catch (Exception e) when (context.Response.HasStarted)
        {
            logger.LogWarning("Relaying {Digest} from {Upstream} failed after the response started: {Reason}", digest, repository, e.Message);
            context.Abort();
            return false;
        }
        finally
        {
            relaying.TryRemove(digest, out _);
        }
    }

    private async Task<long> DownloadAsync(UpstreamRepository repository, Digest digest, BlobRelay? relay, CancellationToken cancellationToken)
    {
        // Uncommitted (a failed or unverified download) the writer leaves nothing behind.
        await using var writer = await blobs.NewWriterAsync(digest.Algorithm, BlobSource.Upstream, cancellationToken);
        return await upstream.DownloadBlobAsync(repository, digest, writer, relay, cancellationToken);
    }
}
