using System.Text.Json;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>What a repository records about a manifest it holds; the bytes themselves are a blob.</summary>
public sealed record ManifestRevision(string MediaType, long Size, string? Subject);

/// <summary>The manifests of a repository, by digest. Each record is one atomically written object.</summary>
public sealed class ManifestRevisions(IStorageDriver driver)
{
    public Task PutAsync(RepositoryName repository, Digest digest, ManifestRevision revision, CancellationToken cancellationToken) =>
        driver.PutContentAsync(RegistryPaths.ManifestRevision(repository, digest), JsonSerializer.SerializeToUtf8Bytes(revision), cancellationToken);

    public async Task<ManifestRevision?> GetAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        var content = await driver.TryGetContentAsync(RegistryPaths.ManifestRevision(repository, digest), cancellationToken);
        return content is null ? null : JsonSerializer.Deserialize<ManifestRevision>(content);
    }

    public Task<bool> DeleteAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        driver.TryDeleteAsync(RegistryPaths.ManifestRevision(repository, digest), cancellationToken);
}
