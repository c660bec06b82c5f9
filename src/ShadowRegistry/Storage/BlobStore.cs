using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// The content-addressed blob store shared by all repositories. A blob file appears only by an atomic rename of
/// a fully written, fsynced and verified temporary file, so whoever sees the file sees all of it. No locks: two
/// uploads of the same digest publish identical bytes, and whichever rename lands last replaces an identical file.
/// </summary>
public sealed class BlobStore(StorageLayout layout, ILogger<BlobStore> logger)
{
    public long? GetSize(Digest digest)
    {
        var info = new FileInfo(layout.Blob(digest));
        return info.Exists ? info.Length : null;
    }

    public string PathOf(Digest digest) => layout.Blob(digest);

    /// <summary>Publishes a verified temporary file (which must be on the storage file system) under its digest.</summary>
    public void Publish(string verifiedTempFile, Digest digest)
    {
        var target = layout.Blob(digest);
        if (File.Exists(target))
        {
            // Already committed by an earlier or concurrent upload of the same content: ours is redundant.
            AtomicFile.TryDelete(verifiedTempFile);
            logger.LogDebug("Blob {Digest} already present", digest);
            return;
        }
        var directory = Path.GetDirectoryName(target)!;
        DurableDirectory.Create(directory);
        // rename(2) over a possibly just-created identical file: atomic, never exposes a partial file.
        File.Move(verifiedTempFile, target, overwrite: true);
        // The client is told 201 after this: the rename must survive a power loss too.
        DurableDirectory.Sync(directory);
        logger.LogInformation("Published blob {Digest}", digest);
    }

    /// <summary>Stores small content held in memory (manifests), verified against its digest by construction.</summary>
    public async Task PutAsync(ReadOnlyMemory<byte> content, Digest digest, CancellationToken cancellationToken)
    {
        if (GetSize(digest) is not null) return;
        var temp = layout.NewTempFile();
        try
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
                await stream.WriteAsync(content, cancellationToken);
                stream.Flush(flushToDisk: true);
            }
            Publish(temp, digest);
        }
        catch
        {
            AtomicFile.TryDelete(temp);
            throw;
        }
    }

    public async Task<byte[]?> TryReadAllBytesAsync(Digest digest, CancellationToken cancellationToken) =>
        await AtomicFile.TryReadAllBytesAsync(layout.Blob(digest), cancellationToken);
}
