using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// The content-addressed blob store shared by all repositories, at <see cref="RegistryPaths.Blob"/> in the storage
/// driver. A blob appears only by a move of a fully written, committed and verified object of its own (an upload's
/// data, or a <see cref="BlobWriter"/>'s temporary), so whoever sees the blob sees all of it. No locks: two uploads of
/// the same digest publish identical bytes, and whichever move lands last replaces an identical file. Every write
/// first records the blob's use (<see cref="BlobTouches"/>), waiting while a garbage collection deletes it.
/// </summary>
public sealed class BlobStore(IStorageDriver driver, BlobTouches touches, RegistryMetrics metrics, ILogger<BlobStore> logger)
{
    public async Task<long?> GetSizeAsync(Digest digest, CancellationToken cancellationToken) =>
        (await StatAsync(digest, cancellationToken))?.Size;

    /// <summary>The blob's size and modification time, or null when it is not there.</summary>
    public async Task<StorageFileInfo?> StatAsync(Digest digest, CancellationToken cancellationToken) =>
        await driver.TryStatAsync(RegistryPaths.Blob(digest), cancellationToken) is { IsDirectory: false } info ? info : null;

    /// <summary>The blob from <paramref name="offset"/>; the caller disposes the stream.</summary>
    public Task<Stream> OpenReadAsync(Digest digest, long offset, CancellationToken cancellationToken) =>
        driver.ReaderAsync(RegistryPaths.Blob(digest), offset, cancellationToken);

    /// <summary>Where a client may fetch the blob directly, or null: serve it.</summary>
    public Task<Uri?> RedirectUrlAsync(Digest digest, HttpMethod method, CancellationToken cancellationToken) =>
        driver.RedirectUrlAsync(RegistryPaths.Blob(digest), method, cancellationToken);

    /// <summary>A writer for a new blob hashed with <paramref name="algorithm"/>, verified and published by its commit.</summary>
    /// <param name="source">What the blob is, for the commit metrics.</param>
    public async Task<BlobWriter> NewWriterAsync(string algorithm, BlobSource source, CancellationToken cancellationToken)
    {
        var path = RegistryPaths.NewTemporary();
        var writer = await driver.WriterAsync(path, append: false, cancellationToken);
        return new BlobWriter(this, writer, path, algorithm, source);
    }

    /// <summary>
    /// Publishes a committed object holding exactly the verified content of <paramref name="digest"/>: the one way
    /// a blob appears. Returns once the blob is durable, so a HEAD after the client's 201 finds all of it.
    /// </summary>
    /// <param name="size">The verified size, and <paramref name="source"/> what the blob is: for the commit metrics.</param>
    public async Task PublishAsync(string verifiedPath, Digest digest, long size, BlobSource source, CancellationToken cancellationToken)
    {
        var target = RegistryPaths.Blob(digest);
        await touches.BeforeWriteAsync(digest, cancellationToken);
        if (await driver.FileExistsAsync(target, cancellationToken))
        {
            // Already committed by an earlier or concurrent upload of the same content: ours is redundant.
            await driver.TryDeleteAsync(verifiedPath, cancellationToken);
            logger.LogDebug("Blob {Digest} already present", digest);
        }
        else
        {
            // Replaces a possibly just-published identical blob: atomic on the filesystem, never a partial file.
            await driver.MoveAsync(verifiedPath, target, cancellationToken);
            logger.LogInformation("Published blob {Digest}", digest);
        }
        // Counted either way: the bytes were received, verified and committed; only the move was found unnecessary.
        metrics.BlobCommitted(source, size);
    }

    /// <summary>
    /// Publishes what <paramref name="writer"/> wrote (verified to be <paramref name="digest"/>) straight at the blob's
    /// path, or discards it when an identical blob is already there. Returns once the blob is durable.
    /// </summary>
    internal async Task PublishAsync(IStorageWriter writer, Digest digest, long size, BlobSource source, CancellationToken cancellationToken)
    {
        var target = RegistryPaths.Blob(digest);
        await touches.BeforeWriteAsync(digest, cancellationToken);
        if (await driver.FileExistsAsync(target, cancellationToken))
        {
            await writer.CancelAsync(cancellationToken);
            logger.LogDebug("Blob {Digest} already present", digest);
        }
        else
        {
            await writer.CommitToAsync(target, cancellationToken);
            logger.LogInformation("Published blob {Digest}", digest);
        }
        metrics.BlobCommitted(source, size);
    }

    /// <summary>Stores small content held in memory (manifests) under its digest, through the same verified path.</summary>
    public async Task PutAsync(ReadOnlyMemory<byte> content, Digest digest, CancellationToken cancellationToken)
    {
        await touches.BeforeWriteAsync(digest, cancellationToken);
        if (await GetSizeAsync(digest, cancellationToken) is not null) return;
        await using var writer = await NewWriterAsync(digest.Algorithm, BlobSource.Manifest, cancellationToken);
        await writer.WriteAsync(content, cancellationToken);
        await writer.CommitAsync(digest, content.Length, cancellationToken);
    }

    /// <summary>Removes a writer's temporary that could not be published.</summary>
    internal Task DiscardTemporaryAsync(string path) => driver.TryDeleteAsync(path, CancellationToken.None);

    public Task<byte[]?> TryReadAllBytesAsync(Digest digest, CancellationToken cancellationToken) =>
        driver.TryGetContentAsync(RegistryPaths.Blob(digest), cancellationToken);
}

/// <summary>
/// A new blob being written into an object of its own: hashed as it goes, then verified against the digest and size
/// it must have, then published by a commit straight to the blob's path. Disposed without a successful commit, it
/// leaves nothing behind.
/// </summary>
public sealed class BlobWriter : IAsyncDisposable
{
    private readonly BlobStore store;
    private readonly IStorageWriter writer;
    private readonly string path;
    private readonly string algorithm;
    private readonly BlobSource source;
    private readonly System.Security.Cryptography.IncrementalHash hasher;
    private Digest? digest;
    private bool ended;

    internal BlobWriter(BlobStore store, IStorageWriter writer, string path, string algorithm, BlobSource source)
    {
        this.store = store;
        this.writer = writer;
        this.path = path;
        this.algorithm = algorithm;
        this.source = source;
        hasher = Digest.CreateHasher(algorithm);
    }

    public long Size { get; private set; }

    public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (digest is not null) throw new InvalidOperationException("the blob's digest was already taken");
        hasher.AppendData(data.Span);
        await writer.WriteAsync(data, cancellationToken);
        Size += data.Length;
    }

    /// <summary>The digest of everything written; nothing more can be written afterwards.</summary>
    public Digest Digest => digest ??= Digest.FromHash(algorithm, hasher.GetHashAndReset());

    /// <summary>
    /// Verifies the content (<see cref="DigestInvalidException"/>, <see cref="SizeInvalidException"/>), commits and
    /// publishes it. On any failure the object is discarded.
    /// </summary>
    public async Task CommitAsync(Digest expected, long? expectedSize, CancellationToken cancellationToken)
    {
        if (expectedSize is { } size && size != Size) throw new SizeInvalidException($"received {Size} bytes, expected {size}");
        if (Digest != expected) throw new DigestInvalidException("provided digest did not match uploaded content", expected, Digest);
        ended = true;
        try
        {
            await store.PublishAsync(writer, expected, Size, source, cancellationToken);
        }
        catch
        {
            await writer.DisposeAsync();
            await DiscardAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        hasher.Dispose();
        if (ended) return;
        ended = true;
        try
        {
            await writer.CancelAsync(CancellationToken.None);
        }
        catch (IOException)
        {
            // Gone already or the store failing: a temporary left behind is crash debris, swept later.
        }
        await writer.DisposeAsync();
    }

    private async Task DiscardAsync()
    {
        try
        {
            await store.DiscardTemporaryAsync(path);
        }
        catch (IOException)
        {
            // Left for the debris sweep.
        }
    }
}
