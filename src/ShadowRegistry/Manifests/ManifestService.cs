using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Manifests;

/// <summary>A manifest as stored: its bytes, media type and digest.</summary>
public sealed record StoredManifest(Digest Digest, string MediaType, byte[] Content);

/// <summary>Result of a manifest push: its digest and the subject it refers to, if any.</summary>
public sealed record PushedManifest(Digest Digest, Digest? Subject);

/// <summary>
/// Manifest push, pull and delete for the local namespace. A push publishes the bytes as a blob, then records the
/// revision, its referrer entry and finally the tag: a reader that can resolve the tag finds everything behind it.
/// </summary>
public sealed class ManifestService(
    BlobStore blobs,
    BlobLinks links,
    ManifestRevisions revisions,
    TagStore tags,
    ReferrerIndex referrers,
    RepositoryCatalog catalog,
    OverlayRepositories overlays,
    BlobTouches touches,
    RegistryMetrics metrics,
    IReplicationQueue replication,
    ILogger<ManifestService> logger)
{
    /// <param name="reference">A tag, or the digest the client claims the content has.</param>
    /// <param name="elsewhere">Where references missing locally may be found instead (the upstream), or null.</param>
    public async Task<PushedManifest> PutAsync(RepositoryName repository, string reference, byte[] content, string? contentType,
        IReferenceLookup? elsewhere, CancellationToken cancellationToken)
    {
        var (tag, claimed) = ParseReference(reference);
        var digest = Digest.Compute(claimed?.Algorithm ?? Digest.Sha256, content);
        if (claimed is { } expected && digest != expected)
            throw new DigestInvalidException("manifest digest does not match its content", expected, digest);

        var manifest = ManifestParser.Parse(content, contentType);
        // Each referenced blob held here is recorded as used before it is checked, so no garbage collection can sweep it
        // during this push; one that a collection is deleting right now counts as missing (docs/gc.md).
        var held = new List<Digest>();
        foreach (var (referenced, _) in manifest.Blobs.Concat(manifest.Manifests))
        {
            switch (await touches.TouchAsync(referenced, cancellationToken))
            {
                case BlobUse.Deleting: throw new ManifestBlobUnknownException(referenced);
                case BlobUse.Present: held.Add(referenced); break;
            }
        }
        foreach (var (blob, size) in manifest.Blobs)
        {
            var stored = await links.GetSizeAsync(repository, blob, cancellationToken)
                ?? (elsewhere is null ? null : await elsewhere.BlobSizeAsync(blob, cancellationToken))
                ?? throw new ManifestBlobUnknownException(blob);
            if (stored != size) throw new ManifestInvalidException($"descriptor of {blob} says {size} bytes, the blob has {stored}");
        }
        foreach (var (child, size) in manifest.Manifests)
        {
            var stored = (await RecordedSizeAsync(repository, child, cancellationToken))
                ?? (elsewhere is null ? null : await elsewhere.ManifestSizeAsync(child, cancellationToken))
                ?? throw new ManifestBlobUnknownException(child);
            if (stored != size) throw new ManifestInvalidException($"descriptor of {child} says {size} bytes, the manifest has {stored}");
        }

        await overlays.MarkAsync(repository, cancellationToken);
        var subject = manifest.Subject?.Digest;
        var revision = new ManifestRevision(manifest.MediaType, content.Length, subject?.ToString());
        var referrer = subject is null ? null : new Descriptor
        {
            MediaType = manifest.MediaType,
            Digest = digest.ToString(),
            Size = content.Length,
            ArtifactType = manifest.ArtifactType,
            Annotations = manifest.Annotations,
        };
        async Task RecordAsync()
        {
            await revisions.PutAsync(repository, digest, revision, cancellationToken);
            // The revision alone makes the repository a catalog entry, even if a later step fails.
            await catalog.AddedAsync(repository);
        }
        Task IndexReferrerAsync() => referrer is null ? Task.CompletedTask : referrers.AddAsync(repository, subject!.Value, referrer, cancellationToken);

        // The bytes and the record are written side by side (each durable write waits on the disk; one after the
        // other would wait twice). A record without its bytes counts as no manifest to every reader, so the order
        // between the two does not matter; only the tag must wait for both. Task.Run: a driver may block in fsync.
        await Task.WhenAll(Task.Run(() => blobs.PutAsync(content, digest, cancellationToken), cancellationToken), RecordAsync());
        // Listed as a referrer only once it can be fetched.
        await IndexReferrerAsync();
        if (tag is not null)
        {
            await tags.SetAsync(repository, tag, digest, cancellationToken);
            // A concurrent DELETE of this digest may have removed the record after we wrote it and before our tag
            // landed; a tag must never point at a manifest the repository no longer records, so restore it.
            if (await revisions.GetAsync(repository, digest, cancellationToken) is null)
            {
                await RecordAsync();
                await IndexReferrerAsync();
            }
        }
        // Recorded as used once more, now that the manifest is stored: a collection that marked before it was stored and
        // swept since must have claimed one of them first, and then this push undoes itself and fails cleanly; any later
        // collection sees the manifest. So a stored manifest never points at a blob that is gone. The manifest's own
        // bytes too: their use was recorded when they were written, which a collection that started since and read
        // this repository before the tag landed may find old enough to sweep, leaving the tag without its manifest.
        foreach (var referenced in held.Append(digest))
        {
            if (await touches.TouchAsync(referenced, cancellationToken) == BlobUse.Present) continue;
            logger.LogWarning("Manifest {Digest} in {Repository} lost {Reference} to garbage collection while being pushed; undone", digest, repository, referenced);
            if (tag is not null) await tags.DeleteIfAsync(repository, tag, digest, CancellationToken.None);
            await revisions.DeleteAsync(repository, digest, CancellationToken.None);
            if (subject is { } undone) await referrers.RemoveAsync(repository, undone, digest, CancellationToken.None);
            throw new ManifestBlobUnknownException(referenced);
        }
        metrics.ManifestPushed(MediaTypes.IsIndex(manifest.MediaType));
        if (repository.Overlay is null)
        {
            if (tag is not null) replication.TagChanged(repository, tag);
            else if (subject is not null) replication.ContentPushed(repository, digest);
        }
        logger.LogInformation("Stored manifest {Digest} ({MediaType}) in {Repository} as {Reference}", digest, manifest.MediaType, repository, reference);
        return new PushedManifest(digest, subject);
    }

    /// <summary>
    /// The size of a manifest this repository records and holds the bytes of, or null. A record whose bytes are not
    /// there (a push still writing them, or one that failed) is no manifest yet.
    /// </summary>
    private async Task<long?> RecordedSizeAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken) =>
        await revisions.GetAsync(repository, digest, cancellationToken) is { } revision && await blobs.GetSizeAsync(digest, cancellationToken) is not null
            ? revision.Size
            : null;

    /// <summary>The manifest a tag or digest names in this repository, or null.</summary>
    public async Task<StoredManifest?> GetAsync(RepositoryName repository, string reference, CancellationToken cancellationToken)
    {
        var digest = await ResolveAsync(repository, reference, cancellationToken);
        if (digest is not { } d) return null;
        var revision = await revisions.GetAsync(repository, d, cancellationToken);
        if (revision is null) return null;
        var content = await blobs.TryReadAllBytesAsync(d, cancellationToken);
        return content is null ? null : new StoredManifest(d, revision.MediaType, content);
    }

    /// <summary>Deletes a tag, or a manifest by digest together with every tag pointing at it. False when unknown.</summary>
    public async Task<bool> DeleteAsync(RepositoryName repository, string reference, CancellationToken cancellationToken)
    {
        var (tag, parsed) = ParseReference(reference);
        if (parsed is not { } digest)
        {
            var deleted = await tags.DeleteAsync(repository, tag!, cancellationToken);
            if (!deleted) return false;
            await catalog.RemovedAsync(repository);
            if (repository.Overlay is null) replication.TagChanged(repository, tag!);
            logger.LogInformation("Deleted tag {Reference} in {Repository}", reference, repository);
            return true;
        }
        var revision = await revisions.GetAsync(repository, digest, cancellationToken);
        if (revision is null) return false;
        // The record goes first, then each tag that still points at this digest, each checked under its lock: a tag
        // re-pointed to another manifest meanwhile is someone's newer push and stays.
        await revisions.DeleteAsync(repository, digest, cancellationToken);
        if (revision.Subject is { } subject && Digest.TryParse(subject, out var subjectDigest)) await referrers.RemoveAsync(repository, subjectDigest, digest, cancellationToken);
        foreach (var pointing in await tags.TagsPointingAtAsync(repository, digest, cancellationToken))
        {
            await tags.DeleteIfAsync(repository, pointing, digest, cancellationToken);
            if (repository.Overlay is null) replication.TagChanged(repository, pointing);
        }
        await catalog.RemovedAsync(repository);
        logger.LogInformation("Deleted manifest {Digest} in {Repository}", digest, repository);
        return true;
    }

    private async Task<Digest?> ResolveAsync(RepositoryName repository, string reference, CancellationToken cancellationToken)
    {
        var (tag, digest) = ParseReference(reference);
        return digest ?? await tags.ResolveAsync(repository, tag!, cancellationToken);
    }

    /// <summary>Whether a reference can name a manifest at all (a valid tag or digest): one that cannot is simply not there.</summary>
    public static bool IsValidReference(string reference) => Digest.TryParse(reference, out _) || Tag.IsValid(reference);

    /// <summary>A reference is a digest or a tag; anything with a colon was meant as a digest.</summary>
    private static (string? Tag, Digest? Digest) ParseReference(string reference)
    {
        if (Digest.TryParse(reference, out var digest)) return (null, digest);
        if (reference.Contains(':')) throw new DigestInvalidException($"invalid or unsupported digest '{reference}'");
        if (!Tag.IsValid(reference)) throw new TagInvalidException(reference);
        return (reference, null);
    }
}
