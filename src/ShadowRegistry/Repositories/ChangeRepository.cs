using ShadowRegistry.Changes;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Repositories;

/// <summary>
/// A repository as seen through a speculative change: the change's own overlay, then the overlays of the live
/// changes ahead of it (nearest first), then the base repository (which itself falls through to the upstream when it
/// shadows one). Writes land in the change's own overlay only. This decorator holds the view's precedence and
/// nothing else; what each layer holds is the layer's business.
/// </summary>
public sealed class ChangeRepository(IRepository baseRepository, IReadOnlyList<ChangeRepository.Layer> layers, IReferenceLookup? upstreamLookup,
    OverlayRepositories overlays) : IRepository
{
    /// <summary>One overlay of the view: the change it belongs to and the local repository of this name inside it.</summary>
    public sealed record Layer(ChangeId Change, LocalRepository Repository)
    {
        public string Source => $"change/{Change}";
    }

    private LocalRepository Own => layers[0].Repository;

    // For the nested lookup, which cannot see the primary constructor's parameters.
    private IRepository Below => baseRepository;
    private IReadOnlyList<Layer> Layers => layers;
    private IReferenceLookup? UpstreamLookup => upstreamLookup;

    public RepositoryTarget Target => baseRepository.Target;

    /// <summary>
    /// Whether the layer's overlay may hold anything of this repository; the layers that surely hold nothing cost no
    /// storage read. Every read through the view asks this of every layer, so it is answered from memory without a
    /// task whenever it can be.
    /// </summary>
    private ValueTask<bool> MayHoldAsync(Layer layer, CancellationToken cancellationToken) =>
        overlays.TryMayHold(layer.Repository.Target.Local) is { } known
            ? ValueTask.FromResult(known)
            : new ValueTask<bool>(overlays.MayHoldAsync(layer.Repository.Target.Local, cancellationToken));

    public async Task<FoundManifest?> GetManifestAsync(string reference, bool headOnly, HttpRequest request, CancellationToken cancellationToken)
    {
        foreach (var layer in layers)
            if (await MayHoldAsync(layer, cancellationToken)
                && await layer.Repository.GetManifestAsync(reference, headOnly, request, cancellationToken) is { } found)
                return found with { Source = layer.Source };
        return await baseRepository.GetManifestAsync(reference, headOnly, request, cancellationToken);
    }

    /// <summary>Into the change's own overlay; what it references may be anywhere the view reads from.</summary>
    public Task<PushedManifest> PutManifestAsync(string reference, byte[] content, string? contentType, CancellationToken cancellationToken) =>
        Own.PutManifestAsync(reference, content, contentType, new BelowOwn(this), cancellationToken);

    /// <summary>Only the change's own content: a view cannot delete what is ahead of it or in the base.</summary>
    public Task<bool> DeleteManifestAsync(string reference, CancellationToken cancellationToken) =>
        Own.DeleteManifestAsync(reference, cancellationToken);

    public async Task<FoundBlob?> GetBlobAsync(Digest digest, CancellationToken cancellationToken)
    {
        foreach (var layer in layers)
            if (await MayHoldAsync(layer, cancellationToken) && await layer.Repository.GetBlobAsync(digest, cancellationToken) is LocalBlob found)
                return found with { Source = layer.Source };
        return await baseRepository.GetBlobAsync(digest, cancellationToken);
    }

    public Task<bool> DeleteBlobAsync(Digest digest, CancellationToken cancellationToken) => Own.DeleteBlobAsync(digest, cancellationToken);

    /// <summary>The union of every layer's tags; a name is listed once whichever layer resolves it.</summary>
    public async Task<TagList?> ListTagsAsync(CancellationToken cancellationToken)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        var sources = new List<string>();
        foreach (var layer in layers)
        {
            if (!await MayHoldAsync(layer, cancellationToken)) continue;
            var own = await layer.Repository.ListOverlayTagsAsync(cancellationToken);
            if (own.Count == 0) continue;
            names.UnionWith(own);
            sources.Add(layer.Source);
        }
        var below = await baseRepository.ListTagsAsync(cancellationToken);
        if (below is not null)
        {
            names.UnionWith(below.Tags);
            sources.Add(below.Source);
        }
        return sources.Count == 0 ? null : new TagList([.. names], string.Join('+', sources));
    }

    public async Task<bool> CanLendAsync(Digest digest, CancellationToken cancellationToken)
    {
        foreach (var layer in layers)
            if (await MayHoldAsync(layer, cancellationToken) && await layer.Repository.CanLendAsync(digest, cancellationToken)) return true;
        return await baseRepository.CanLendAsync(digest, cancellationToken);
    }

    public Task<bool> MountAsync(Digest digest, IRepository from, CancellationToken cancellationToken) =>
        Own.MountAsync(digest, from, cancellationToken);

    /// <summary>Where a push into the own overlay may find what its manifest references: the layers ahead, the base, its upstream.</summary>
    private sealed class BelowOwn(ChangeRepository view) : IReferenceLookup
    {
        public async Task<long?> BlobSizeAsync(Digest digest, CancellationToken cancellationToken)
        {
            foreach (var layer in view.Layers.Skip(1))
                if (await layer.Repository.GetBlobAsync(digest, cancellationToken) is LocalBlob found) return found.Size;
            if (await view.Below.GetBlobAsync(digest, cancellationToken) is LocalBlob local) return local.Size;
            return view.UpstreamLookup is null ? null : await view.UpstreamLookup.BlobSizeAsync(digest, cancellationToken);
        }

        public async Task<long?> ManifestSizeAsync(Digest digest, CancellationToken cancellationToken)
        {
            foreach (var layer in view.Layers.Skip(1))
                if (await layer.Repository.ManifestSizeAsync(digest, cancellationToken) is { } size) return size;
            if (view.Below is LocalRepository local && await local.ManifestSizeAsync(digest, cancellationToken) is { } own) return own;
            if (view.Below is ShadowingRepository shadowing && await shadowing.LocalManifestSizeAsync(digest, cancellationToken) is { } kept) return kept;
            return view.UpstreamLookup is null ? null : await view.UpstreamLookup.ManifestSizeAsync(digest, cancellationToken);
        }
    }
}
