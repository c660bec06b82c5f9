using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Lets a locally pushed manifest reference what the upstream holds: a client building FROM an upstream image
/// skips uploading base layers because a HEAD on them succeeds (by falling through), so the manifest push must
/// accept them too. Cached pull-through blobs count as well.
/// </summary>
public sealed class UpstreamReferences(UpstreamClient upstream, BlobLinks links)
{
    public IReferenceLookup? For(RepositoryTarget target) => target.Upstream is null ? null : new Lookup(target, upstream, links);

    private sealed class Lookup(RepositoryTarget target, UpstreamClient upstream, BlobLinks links) : IReferenceLookup
    {
        public async Task<long?> BlobSizeAsync(Digest digest, CancellationToken cancellationToken) =>
            await links.GetCachedSizeAsync(target.Local, digest, cancellationToken) ?? await upstream.GetBlobSizeAsync(target.Upstream!, digest, cancellationToken);

        public async Task<long?> ManifestSizeAsync(Digest digest, CancellationToken cancellationToken) =>
            (await upstream.GetManifestAsync(target.Upstream!, digest.ToString(), headOnly: true, [], cancellationToken))?.Size;
    }
}
