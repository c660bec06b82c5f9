using System.Text.Json;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;

namespace ShadowRegistry.Storage;

/// <summary>
/// The OCI 1.1 referrers of each subject: one file per (subject, referrer) holding the referrer's descriptor,
/// so concurrent pushes of different referrers never rewrite a shared list.
/// </summary>
public sealed class ReferrerIndex(StorageLayout layout)
{
    public Task AddAsync(RepositoryName repository, Digest subject, Descriptor referrer, CancellationToken cancellationToken) =>
        AtomicFile.WriteAllBytesAsync(layout.Referrer(repository, subject, Digest.Parse(referrer.Digest)),
            JsonSerializer.SerializeToUtf8Bytes(referrer, ManifestJson.Options), cancellationToken);

    public bool Remove(RepositoryName repository, Digest subject, Digest referrer) =>
        AtomicFile.TryDeleteDurably(layout.Referrer(repository, subject, referrer));

    public async Task<List<Descriptor>> ListAsync(RepositoryName repository, Digest subject, CancellationToken cancellationToken)
    {
        var directory = layout.ReferrersDirectory(repository, subject);
        var result = new List<Descriptor>();
        if (!Directory.Exists(directory)) return result;
        foreach (var path in Directory.EnumerateFiles(directory))
        {
            if (StorageLayout.IsTemporary(Path.GetFileName(path))) continue;
            var content = await AtomicFile.TryReadAllBytesAsync(path, cancellationToken);
            if (content is not null && JsonSerializer.Deserialize<Descriptor>(content, ManifestJson.Options) is { } descriptor) result.Add(descriptor);
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Digest, b.Digest));
        return result;
    }
}
