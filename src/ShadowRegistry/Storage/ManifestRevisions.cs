using System.Text.Json;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>What a repository records about a manifest it holds; the bytes themselves are a blob.</summary>
public sealed record ManifestRevision(string MediaType, long Size, string? Subject);

/// <summary>The manifests of a repository, by digest. Each record is one atomically written file.</summary>
public sealed class ManifestRevisions(StorageLayout layout)
{
    public Task PutAsync(RepositoryName repository, Digest digest, ManifestRevision revision, CancellationToken cancellationToken) =>
        AtomicFile.WriteAllBytesAsync(layout.ManifestRevision(repository, digest), JsonSerializer.SerializeToUtf8Bytes(revision), cancellationToken);

    public async Task<ManifestRevision?> GetAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        var content = await AtomicFile.TryReadAllBytesAsync(layout.ManifestRevision(repository, digest), cancellationToken);
        return content is null ? null : JsonSerializer.Deserialize<ManifestRevision>(content);
    }

    public bool Delete(RepositoryName repository, Digest digest) => AtomicFile.TryDeleteDurably(layout.ManifestRevision(repository, digest));
}
