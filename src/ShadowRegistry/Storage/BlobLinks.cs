using System.Text;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>Which blobs a repository may serve. A link is a small file; creating it also creates the repository.</summary>
public sealed class BlobLinks(StorageLayout layout, BlobStore blobs)
{
    public Task LinkAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        AtomicFile.WriteAllBytesAsync(layout.LayerLink(repository, digest), Encoding.ASCII.GetBytes(digest.ToString()), cancellationToken);

    /// <summary>Size of a blob this repository can serve: a linked layer/config blob, or one of its manifests.</summary>
    public long? GetSize(RepositoryName repository, Digest digest)
    {
        if (!File.Exists(layout.LayerLink(repository, digest)) && !File.Exists(layout.ManifestRevision(repository, digest))) return null;
        return blobs.GetSize(digest);
    }

    /// <summary>Records a verified pulled-through blob as cached for this repository's upstream.</summary>
    public Task CacheAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        AtomicFile.WriteAllBytesAsync(layout.CacheLink(repository, digest), Encoding.ASCII.GetBytes(digest.ToString()), cancellationToken);

    public long? GetCachedSize(RepositoryName repository, Digest digest) =>
        File.Exists(layout.CacheLink(repository, digest)) ? blobs.GetSize(digest) : null;

    public bool Unlink(RepositoryName repository, Digest digest) => AtomicFile.TryDeleteDurably(layout.LayerLink(repository, digest));
}
