using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// Where blobs, upload sessions and temporary files live below the storage root. Blobs are content-addressed and
/// shared by all repositories. Upload sessions and temporary files sit on the same file system as the blobs so that
/// publishing is a rename. Repository metadata goes through the storage driver, at <see cref="RegistryPaths"/>.
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
}
