using Microsoft.Extensions.Options;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Repositories;

/// <summary>
/// The repository a request acts on, chosen from its resolved target: a purely local name gets a
/// <see cref="LocalRepository"/>, a name that shadows an upstream gets it wrapped in a <see cref="ShadowingRepository"/>.
/// Both are cheap views over singleton services, made per request.
/// </summary>
public sealed class RepositoryFactory(
    ManifestService manifests,
    BlobLinks links,
    TagStore tags,
    RepositoryCatalog catalog,
    BlobStore blobs,
    UpstreamClient upstreamClient,
    UpstreamManifests upstreamManifests,
    UpstreamReferences upstreamReferences,
    UpstreamBlobFetcher fetcher,
    UpstreamBlobForwarder forwarder,
    IOptions<ShadowOptions> shadowOptions,
    ILogger<ShadowingRepository> logger)
{
    public IRepository For(RepositoryTarget target)
    {
        var local = new LocalRepository(target, manifests, links, tags, catalog);
        if (target.Upstream is not { } upstream) return local;
        return new ShadowingRepository(local, upstream, blobs, upstreamClient, upstreamManifests, upstreamReferences, fetcher, forwarder,
            shadowOptions.Value.CacheBlobs, logger);
    }
}
