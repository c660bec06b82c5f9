using System.Text;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>Which blobs a repository may serve. A link is a small object; creating it also creates the repository.</summary>
public sealed class BlobLinks(IStorageDriver driver, BlobStore blobs, BlobTouches touches, OverlayRepositories overlays)
{
    /// <summary>
    /// Links a blob that is already stored (a mount), recording its use first; false when it is not there after all or a
    /// garbage collection is deleting it.
    /// </summary>
    public async Task<bool> TryLinkStoredAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        if (await touches.TouchAsync(digest, cancellationToken) != BlobUse.Present) return false;
        await LinkAsync(repository, digest, cancellationToken);
        return true;
    }

    public async Task LinkAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        await overlays.MarkAsync(repository, cancellationToken);
        await driver.PutContentAsync(RegistryPaths.LayerLink(repository, digest), Encoding.ASCII.GetBytes(digest.ToString()), cancellationToken);
    }

    /// <summary>Size of a blob this repository can serve: a linked layer/config blob, or one of its manifests.</summary>
    public async Task<long?> GetSizeAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        if (!await driver.FileExistsAsync(RegistryPaths.LayerLink(repository, digest), cancellationToken)
            && !await driver.FileExistsAsync(RegistryPaths.ManifestRevision(repository, digest), cancellationToken)) return null;
        return await blobs.GetSizeAsync(digest, cancellationToken);
    }

    /// <summary>Records a verified pulled-through blob as cached for this repository's upstream.</summary>
    public Task CacheAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        driver.PutContentAsync(RegistryPaths.CacheLink(repository, digest), Encoding.ASCII.GetBytes(digest.ToString()), cancellationToken);

    public async Task<long?> GetCachedSizeAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        await driver.FileExistsAsync(RegistryPaths.CacheLink(repository, digest), cancellationToken) ? await blobs.GetSizeAsync(digest, cancellationToken) : null;

    public Task<bool> UnlinkAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        driver.TryDeleteAsync(RegistryPaths.LayerLink(repository, digest), cancellationToken);
}
