using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// Where everything lives below the storage root. Blobs are content-addressed and shared by all repositories;
/// a repository holds only small link and metadata files. Upload sessions and temporary files sit on the same
/// file system as the blobs so that publishing is a rename.
/// </summary>
public sealed class StorageLayout
{
    public StorageLayout(IOptions<RegistryOptions> options)
    {
        Root = Path.GetFullPath(options.Value.StorageRoot);
        BlobsRoot = Path.Combine(Root, "blobs");
        UploadsRoot = Path.Combine(Root, "uploads");
        TempRoot = Path.Combine(Root, "tmp");
        RepositoriesRoot = Path.Combine(Root, "repositories");
        foreach (var dir in new[] { BlobsRoot, UploadsRoot, TempRoot, RepositoriesRoot }) Directory.CreateDirectory(dir);
    }

    public string Root { get; }
    public string BlobsRoot { get; }
    public string UploadsRoot { get; }
    public string TempRoot { get; }
    public string RepositoriesRoot { get; }

    public string Blob(Digest digest) => Path.Combine(BlobsRoot, digest.Algorithm, digest.Hex[..2], digest.Hex);

    public string NewTempFile() => Path.Combine(TempRoot, Guid.NewGuid().ToString("N"));

    public string Upload(string id) => Path.Combine(UploadsRoot, id);

    public string Repository(RepositoryName name) => Path.Combine(RepositoriesRoot, name.Value);

    public string LayerLink(RepositoryName name, Digest digest) => Path.Combine(Repository(name), "_layers", digest.Algorithm, digest.Hex);

    /// <summary>A blob pulled through from upstream and kept: served like a local blob but not part of the local repository.</summary>
    public string CacheLink(RepositoryName name, Digest digest) => Path.Combine(Repository(name), "_cache", digest.Algorithm, digest.Hex);

    public string ManifestRevision(RepositoryName name, Digest digest) =>
        Path.Combine(Repository(name), "_manifests", "revisions", digest.Algorithm, digest.Hex);

    public string TagsDirectory(RepositoryName name) => Path.Combine(Repository(name), "_manifests", "tags");

    public string Tag(RepositoryName name, string tag) => Path.Combine(TagsDirectory(name), tag);

    /// <summary>The lock file serializing writes and compare-and-deletes of one tag; kept apart so it is never listed as a tag.</summary>
    public string TagLock(RepositoryName name, string tag) => Path.Combine(Repository(name), "_manifests", "locks", tag);

    public string ReferrersDirectory(RepositoryName name, Digest subject) =>
        Path.Combine(Repository(name), "_referrers", subject.Algorithm, subject.Hex);

    public string Referrer(RepositoryName name, Digest subject, Digest referrer) =>
        Path.Combine(ReferrersDirectory(name, subject), $"{referrer.Algorithm}-{referrer.Hex}");

    /// <summary>Files whose name starts with a dot are in-flight temporaries, never data (no tag or digest starts with one).</summary>
    public static bool IsTemporary(string fileName) => fileName.StartsWith('.');
}
