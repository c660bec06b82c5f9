using ShadowRegistry.Domain;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Copies an upstream blob into local storage: downloaded into its own temporary file, verified, then published
/// with the same atomic rename as a push. Used by pull-through caching and by mounts from upstream-only repositories.
/// </summary>
public sealed class UpstreamBlobFetcher(UpstreamClient upstream, BlobStore blobs, StorageLayout layout)
{
    private readonly SingleFlight<Digest, long> inFlight = new();

    /// <summary>Makes the blob present locally (if it is not already) and returns its size; one download per digest at a time.</summary>
    public async Task<long> FetchAsync(UpstreamRepository repository, Digest digest, CancellationToken cancellationToken)
    {
        if (blobs.GetSize(digest) is { } present) return present;
        return await inFlight.RunAsync(digest, () => DownloadAsync(repository, digest), cancellationToken);
    }

    private async Task<long> DownloadAsync(UpstreamRepository repository, Digest digest)
    {
        // Not tied to the first requester: a client that gives up must not fail the others waiting on this download.
        var cancellationToken = CancellationToken.None;
        var temp = layout.NewTempFile();
        try
        {
            var size = await upstream.DownloadBlobAsync(repository, digest, temp, cancellationToken);
            blobs.Publish(temp, digest);
            return size;
        }
        finally
        {
            AtomicFile.TryDelete(temp);
        }
    }
}
