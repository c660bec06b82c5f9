using System.Text.Json;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// The OCI 1.1 referrers of each subject: one object per (subject, referrer) holding the referrer's descriptor,
/// so concurrent pushes of different referrers never rewrite a shared list.
/// </summary>
public sealed class ReferrerIndex(IStorageDriver driver)
{
    public Task AddAsync(RepositoryName repository, Digest subject, Descriptor referrer, CancellationToken cancellationToken) =>
        driver.PutContentAsync(RegistryPaths.Referrer(repository, subject, Digest.Parse(referrer.Digest)),
            JsonSerializer.SerializeToUtf8Bytes(referrer, ManifestJson.Default.Descriptor), cancellationToken);

    public Task<bool> RemoveAsync(RepositoryName repository, Digest subject, Digest referrer, CancellationToken cancellationToken) =>
        driver.TryDeleteAsync(RegistryPaths.Referrer(repository, subject, referrer), cancellationToken);

    public async Task<List<Descriptor>> ListAsync(RepositoryName repository, Digest subject, CancellationToken cancellationToken)
    {
        var directory = RegistryPaths.ReferrersDirectory(repository, subject);
        var result = new List<Descriptor>();
        foreach (var name in await driver.ListOrEmptyAsync(directory, cancellationToken))
        {
            var content = await driver.TryGetContentAsync(StoragePath.Join(directory, name), cancellationToken);
            if (content is not null && JsonSerializer.Deserialize(content, ManifestJson.Default.Descriptor) is { } descriptor) result.Add(descriptor);
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Digest, b.Digest));
        return result;
    }
}
