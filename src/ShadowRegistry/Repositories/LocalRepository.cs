using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Repositories;

/// <summary>A repository's own content: manifests, blob links and tags in local storage, nothing from anywhere else.</summary>
public sealed class LocalRepository(RepositoryTarget target, ManifestService manifests, BlobLinks links, TagStore tags, RepositoryCatalog catalog)
    : IRepository
{
    public RepositoryTarget Target => target;

    private RepositoryName Name => target.Local;

    public async Task<FoundManifest?> GetManifestAsync(string reference, bool headOnly, HttpRequest request, CancellationToken cancellationToken) =>
        await manifests.GetAsync(Name, reference, cancellationToken) is { } local
            ? new FoundManifest(local.Digest, local.MediaType, local.Content.Length, local.Content, "local")
            : null;

    public Task<PushedManifest> PutManifestAsync(string reference, byte[] content, string? contentType, CancellationToken cancellationToken) =>
        PutManifestAsync(reference, content, contentType, null, cancellationToken);

    /// <param name="elsewhere">Where references missing here may be found instead (a shadowed upstream), or null.</param>
    public Task<PushedManifest> PutManifestAsync(string reference, byte[] content, string? contentType, IReferenceLookup? elsewhere,
        CancellationToken cancellationToken) =>
        manifests.PutAsync(Name, reference, content, contentType, elsewhere, cancellationToken);

    public Task<bool> DeleteManifestAsync(string reference, CancellationToken cancellationToken) =>
        manifests.DeleteAsync(Name, reference, cancellationToken);

    public async Task<FoundBlob?> GetBlobAsync(Digest digest, CancellationToken cancellationToken) =>
        await links.GetSizeAsync(Name, digest, cancellationToken) is { } size ? new LocalBlob(digest, size, "local") : null;

    /// <summary>A blob kept from this repository's upstream earlier (a cache link), or null.</summary>
    public async Task<LocalBlob?> GetCachedBlobAsync(Digest digest, CancellationToken cancellationToken) =>
        await links.GetCachedSizeAsync(Name, digest, cancellationToken) is { } size ? new LocalBlob(digest, size, "cache") : null;

    /// <summary>Records that bytes already in the store are this repository's, kept from its upstream.</summary>
    public Task CacheBlobAsync(Digest digest, CancellationToken cancellationToken) => links.CacheAsync(Name, digest, cancellationToken);

    public Task<bool> DeleteBlobAsync(Digest digest, CancellationToken cancellationToken) => links.UnlinkAsync(Name, digest, cancellationToken);

    /// <summary>The size of a manifest this repository records and holds, or null.</summary>
    public async Task<long?> ManifestSizeAsync(Digest digest, CancellationToken cancellationToken) =>
        (await manifests.GetAsync(Name, digest.ToString(), cancellationToken))?.Content.Length;

    /// <summary>The tags of a repository in a change overlay (which the catalog does not track), sorted.</summary>
    public Task<List<string>> ListOverlayTagsAsync(CancellationToken cancellationToken) => tags.ListAsync(Name, cancellationToken);

    public async Task<TagList?> ListTagsAsync(CancellationToken cancellationToken) =>
        await catalog.ExistsAsync(Name, cancellationToken) ? new TagList(await tags.ListAsync(Name, cancellationToken), "local") : null;

    /// <summary>Linked here, or kept here from the upstream: both are this repository's own.</summary>
    public async Task<bool> CanLendAsync(Digest digest, CancellationToken cancellationToken) =>
        await links.GetSizeAsync(Name, digest, cancellationToken) is not null
        || await links.GetCachedSizeAsync(Name, digest, cancellationToken) is not null;

    public async Task<bool> MountAsync(Digest digest, IRepository from, CancellationToken cancellationToken)
    {
        if (!await from.CanLendAsync(digest, cancellationToken)) return false;
        // A mount is a use of the blob: a collection must not sweep it before the manifest that needs it arrives.
        return await links.TryLinkStoredAsync(Name, digest, cancellationToken);
    }
}
