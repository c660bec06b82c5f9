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
    ShadowingServices shadowing)
{
    public IRepository For(RepositoryTarget target)
    {
        var local = new LocalRepository(target, manifests, links, tags, catalog);
        if (target.Upstream is not { } upstream) return local;
        return new ShadowingRepository(local, upstream, shadowing);
    }
}
