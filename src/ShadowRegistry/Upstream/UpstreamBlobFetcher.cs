using ShadowRegistry.Domain;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Copies an upstream blob into local storage: downloaded into its own temporary file, verified, then published
/// with the same atomic rename as a push. Used by pull-through caching and by mounts from upstream-only repositories.
/// </summary>
public sealed class UpstreamBlobFetcher(UpstreamClient upstream, BlobStore blobs, StorageLayout layout)
{
    /// <summary>Makes the blob present locally (if it is not already) and returns its size.</summary>
    public async Task<long> FetchAsync(UpstreamRepository repository, Digest digest, CancellationToken cancellationToken)
    {
        if (blobs.GetSize(digest) is { } present) return present;
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
