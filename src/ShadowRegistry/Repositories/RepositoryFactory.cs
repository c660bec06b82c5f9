using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Repositories;

/// <summary>
/// The repository a request acts on, chosen from its resolved target: a purely local name gets a
/// <see cref="LocalRepository"/>, a name that shadows an upstream gets it wrapped in a <see cref="ShadowingRepository"/>,
/// and a request through a speculative change gets that wrapped in a <see cref="ChangeRepository"/>.
/// Both are cheap views over singleton services, made per request.
/// </summary>
public sealed class RepositoryFactory(
    ManifestService manifests,
    BlobLinks links,
    TagStore tags,
    RepositoryCatalog catalog,
    OverlayRepositories overlays,
    ShadowingServices shadowing)
{
    public IRepository For(RepositoryTarget target)
    {
        var local = new LocalRepository(target, manifests, links, tags, catalog);
        IRepository below = target.Upstream is { } upstream ? new ShadowingRepository(local, upstream, shadowing) : local;
        if (target.View is not { } view) return below;
        // Through a change: its own overlay and those ahead, each the same repository name inside that overlay.
        var layers = new List<ChangeRepository.Layer>(view.Overlays.Count);
        foreach (var overlay in view.Overlays)
        {
            layers.Add(new ChangeRepository.Layer(overlay.Change,
                new LocalRepository(target with { Local = target.Local.In(overlay), View = null }, manifests, links, tags, catalog)));
        }
        return new ChangeRepository(below, layers, shadowing.References.For(target), overlays);
    }
}
