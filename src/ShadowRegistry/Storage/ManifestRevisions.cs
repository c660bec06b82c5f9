using System.Text.Json;
using System.Text.Json.Serialization;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>What a repository records about a manifest it holds; the bytes themselves are a blob.</summary>
public sealed record ManifestRevision(string MediaType, long Size, string? Subject);

/// <summary>The manifests of a repository, by digest. Each record is one atomically written object.</summary>
public sealed class ManifestRevisions(IStorageDriver driver)
{
    public Task PutAsync(RepositoryName repository, Digest digest, ManifestRevision revision, CancellationToken cancellationToken) =>
        driver.PutContentAsync(RegistryPaths.ManifestRevision(repository, digest), JsonSerializer.SerializeToUtf8Bytes(revision, StorageJson.Default.ManifestRevision), cancellationToken);

    public async Task<ManifestRevision?> GetAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        var content = await driver.TryGetContentAsync(RegistryPaths.ManifestRevision(repository, digest), cancellationToken);
        return content is null ? null : JsonSerializer.Deserialize(content, StorageJson.Default.ManifestRevision);
    }

    public Task<bool> DeleteAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        driver.TryDeleteAsync(RegistryPaths.ManifestRevision(repository, digest), cancellationToken);
}

/// <summary>The records storage keeps as JSON, by generated code rather than reflection (the Native AOT build has none).</summary>
[JsonSerializable(typeof(ManifestRevision))]
internal sealed partial class StorageJson : JsonSerializerContext;
