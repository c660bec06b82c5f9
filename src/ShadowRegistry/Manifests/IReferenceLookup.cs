using ShadowRegistry.Domain;

namespace ShadowRegistry.Manifests;

/// <summary>Somewhere besides the local repository that a pushed manifest's references may live.</summary>
public interface IReferenceLookup
{
    Task<long?> BlobSizeAsync(Digest digest, CancellationToken cancellationToken);

    Task<long?> ManifestSizeAsync(Digest digest, CancellationToken cancellationToken);
}
