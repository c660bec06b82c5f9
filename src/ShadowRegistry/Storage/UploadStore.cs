using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// Upload sessions, kept wholly in the storage driver (<see cref="RegistryPaths.Upload"/>), so any process sharing
/// the store can continue a session another one started. Each session writes only its own data object, through the
/// driver's writer, which admits one writer per path at a time: two requests on one session cannot interleave, the
/// loser is told where the upload stands. Every chunk is committed whole or taken back, so the data always holds
/// exactly what the client was last told. Finishing verifies digest and size and hands the data to
/// <see cref="BlobStore.PublishAsync"/>: the only way a blob appears.
/// </summary>
public sealed partial class UploadStore(IStorageDriver driver, BlobStore blobs, UploadHashStates hashStates, TimeProvider time,
    RegistryMetrics metrics, ILogger<UploadStore> logger)
{
    /// <summary>
    /// Sessions this process started and has not seen end, for the in-flight gauge. Kept as a set rather than a bare
    /// count so that ending a session started elsewhere (another process, or before a restart) cannot drive it below zero.
    /// </summary>
    private readonly ConcurrentDictionary<string, byte> open = new();

    public async Task<UploadSession> StartAsync(RepositoryName repository, CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid().ToString("N");
        var session = new UploadSession(id, repository);
        try
        {
            // Committed while empty, so its size and age can be read (stat) on every driver from the start.
            await using (var data = await driver.WriterAsync(session.DataPath, append: false, cancellationToken))
                await data.CommitAsync(cancellationToken);
            await driver.PutContentAsync(RegistryPaths.UploadStartedAt(id), Encoding.UTF8.GetBytes(time.GetUtcNow().ToString("O")), cancellationToken);
            // The marker last: the session is live only once all of it is there.
            await driver.PutContentAsync(session.MarkerPath, Encoding.UTF8.GetBytes(repository.Value), cancellationToken);
        }
        catch
        {
            // A disk too full for the marker must not leave a half-made session for the janitor.
            await EndAsync(id);
            throw;
        }
        if (open.TryAdd(id, 0)) metrics.UploadSessionOpened();
        logger.LogInformation("Started upload {UploadId} to {Repository}", id, repository);
        return session;
    }

    /// <summary>The live session with this id in this repository, or null.</summary>
    public async Task<UploadSession?> FindAsync(RepositoryName repository, string id, CancellationToken cancellationToken)
    {
        if (!UploadIdPattern().IsMatch(id)) return null;
        var session = new UploadSession(id, repository);
        var owner = await driver.TryGetContentAsync(session.MarkerPath, cancellationToken);
        return owner is not null && Encoding.UTF8.GetString(owner) == repository.Value ? session : null;
    }

    /// <summary>How many bytes the session holds.</summary>
    public async Task<long> SizeAsync(UploadSession session, CancellationToken cancellationToken) =>
        await driver.TryStatAsync(session.DataPath, cancellationToken) is { IsDirectory: false } info ? info.Size : throw new BlobUploadUnknownException(session.Id);

    /// <summary>
    /// Appends one chunk. <paramref name="rangeStart"/> (from Content-Range) must continue the upload; a chunk that
    /// fails part-way (client gone, body shorter than announced, disk full) is taken back so the session stays
    /// consistent.
    /// </summary>
    public async Task<long> AppendAsync(UploadSession session, Stream body, long? rangeStart, long? expectedLength, CancellationToken cancellationToken)
    {
        await using var writer = await OpenAsync(session, cancellationToken);
        var start = writer.Size;
        if (rangeStart is { } requested && requested != start) throw new UploadRangeException(start);
        var state = hashStates.Take(session.Id, start);
        long size;
        try
        {
            await WriteChunkAsync(writer, body, state, expectedLength, cancellationToken);
            size = writer.Size; // an ended writer has no size to tell
            // Committed per chunk: every driver then shows the size the client is told, and the chunk is durable.
            await writer.CommitAsync(cancellationToken);
        }
        catch
        {
            state?.Hasher.Dispose();
            await RollBackAsync(writer, start);
            throw;
        }
        if (state is not null)
        {
            state.Offset = size;
            hashStates.Put(session.Id, state);
        }
        return size;
    }

    /// <summary>
    /// Appends the optional last chunk, verifies the whole upload against <paramref name="expected"/> and publishes
    /// it. Returns once the blob is committed: a HEAD issued after this returns the full blob.
    /// </summary>
    public async Task<long> FinishAsync(UploadSession session, Stream body, long? rangeStart, long? expectedLength, Digest expected, CancellationToken cancellationToken)
    {
        long start, size;
        UploadHashStates.State? state;
        await using (var writer = await OpenAsync(session, cancellationToken))
        {
            start = writer.Size;
            if (rangeStart is { } requested && requested != start) throw new UploadRangeException(start);
            state = hashStates.Take(session.Id, start);
            var claimed = false;
            try
            {
                await WriteChunkAsync(writer, body, state, expectedLength, cancellationToken);
                size = writer.Size;
                // The marker goes while this writer still holds the data: a writer that gets it after the commit below
                // finds the session over and writes nothing into what is being published.
                await driver.DeleteAsync(session.MarkerPath, cancellationToken);
                claimed = true;
                await writer.CommitAsync(cancellationToken);
            }
            catch
            {
                state?.Hasher.Dispose();
                if (!await RollBackAsync(writer, start)) await ResumeAsync(session, start);
                else if (claimed) await RestoreMarkerAsync(session);
                throw;
            }
        }

        Digest actual;
        try
        {
            actual = state is not null && expected.Algorithm == Digest.Sha256
                ? Digest.FromHash(Digest.Sha256, state.Hasher.GetHashAndReset())
                : await HashAsync(session, expected.Algorithm, size, cancellationToken);
        }
        catch
        {
            await ResumeAsync(session, start);
            throw;
        }
        finally
        {
            state?.Hasher.Dispose();
        }

        if (actual != expected)
        {
            logger.LogWarning("Upload {UploadId} to {Repository} has digest {Actual}, client claimed {Digest}", session.Id, session.Repository, actual, expected);
            await EndAsync(session.Id);
            throw new DigestInvalidException("provided digest did not match uploaded content", expected, actual);
        }

        try
        {
            await blobs.PublishAsync(session.DataPath, actual, size, BlobSource.Upload, cancellationToken);
        }
        catch
        {
            // Not moved (e.g. no space for the blob's folder): the data is still the session's, so take the last chunk
            // back and let the client resume.
            await ResumeAsync(session, start);
            throw;
        }
        await EndAsync(session.Id);
        logger.LogInformation("Upload {UploadId} to {Repository} committed {Digest} ({Size} bytes)", session.Id, session.Repository, actual, size);
        return size;
    }

    public async Task CancelAsync(UploadSession session)
    {
        await EndAsync(session.Id);
        logger.LogInformation("Cancelled upload {UploadId} to {Repository}", session.Id, session.Repository);
    }

    /// <summary>
    /// Removes sessions nobody wrote to for <paramref name="expiry"/>; a session busy right now is skipped. Returns
    /// how many sessions were removed.
    /// </summary>
    public async Task<int> PurgeAbandonedAsync(TimeSpan expiry, CancellationToken cancellationToken) =>
        (await PurgeAbandonedAsync(expiry, dryRun: false, cancellationToken)).Count;

    /// <summary>As above, also saying how many bytes the sessions held; with <paramref name="dryRun"/> only counts them.</summary>
    public async Task<(int Count, long Bytes)> PurgeAbandonedAsync(TimeSpan expiry, bool dryRun, CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - expiry;
        var purged = 0;
        long bytes = 0;
        foreach (var id in await driver.ListOrEmptyAsync(RegistryPaths.Uploads, cancellationToken))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var data = await driver.TryStatAsync(RegistryPaths.UploadData(id), cancellationToken);
            var lastWrite = data?.ModifiedTime ?? (await driver.TryStatAsync(RegistryPaths.Upload(id), cancellationToken))?.ModifiedTime;
            if (lastWrite is null || lastWrite > cutoff) continue;
            if (dryRun)
            {
                purged++;
                bytes += data?.Size ?? 0;
                continue;
            }
            IStorageWriter? holding = null;
            try
            {
                // Held while the session goes, so no request can write into it meanwhile.
                holding = await driver.WriterAsync(RegistryPaths.UploadData(id), append: true, cancellationToken);
            }
            catch (PathNotFoundException)
            {
                // Half-created or half-ended: nothing is writing to it.
            }
            catch (PathBusyException)
            {
                continue; // a request holds it right now
            }
            try
            {
                await EndAsync(id);
            }
            finally
            {
                if (holding is not null) await holding.DisposeAsync();
            }
            purged++;
            bytes += data?.Size ?? 0;
            logger.LogInformation("Removed abandoned upload {UploadId}, idle since {LastWrite:u}", id, lastWrite);
        }
        // A session of ours that another process sharing the store finished is gone without our knowing.
        foreach (var id in open.Keys)
        {
            if (await driver.TryStatAsync(RegistryPaths.Upload(id), cancellationToken) is null) Forget(id);
        }
        return (purged, bytes);
    }

    /// <summary>Ends a session: its marker goes first, so a writer that still holds the data finds it gone.</summary>
    private async Task EndAsync(string id)
    {
        hashStates.Forget(id);
        Forget(id);
        try
        {
            await driver.TryDeleteAsync(RegistryPaths.UploadMarker(id), CancellationToken.None);
            await driver.TryDeleteAsync(RegistryPaths.Upload(id), CancellationToken.None);
        }
        catch (IOException e)
        {
            // Left for the janitor: without its marker the session is over either way, and it ages out.
            logger.LogWarning(e, "Could not remove upload {UploadId}", id);
        }
    }

    private void Forget(string id)
    {
        if (open.TryRemove(id, out _)) metrics.UploadSessionEnded();
    }

    /// <summary>Takes a chunk back (cut to <paramref name="start"/>, committed so every driver shows that size); best effort.</summary>
    private async Task<bool> RollBackAsync(IStorageWriter writer, long start)
    {
        try
        {
            if (writer.Size != start) await writer.TruncateAsync(start, CancellationToken.None);
            await writer.CommitAsync(CancellationToken.None);
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // Already ended (a commit that failed) or the store failing too: the caller's error stands.
            logger.LogDebug(e, "Could not roll a chunk back");
            return false;
        }
    }

    /// <summary>After a finish that failed past the commit: the session goes on, holding what the client was last told.</summary>
    private async Task ResumeAsync(UploadSession session, long start)
    {
        try
        {
            await using (var writer = await driver.WriterAsync(session.DataPath, append: true, CancellationToken.None))
                if (!await RollBackAsync(writer, start)) return;
            await RestoreMarkerAsync(session);
        }
        catch (IOException e)
        {
            logger.LogWarning(e, "Upload {UploadId} could not be resumed after a failed finish", session.Id);
        }
    }

    private async Task RestoreMarkerAsync(UploadSession session)
    {
        try
        {
            await driver.PutContentAsync(session.MarkerPath, Encoding.UTF8.GetBytes(session.Repository.Value), CancellationToken.None);
        }
        catch (IOException e)
        {
            logger.LogWarning(e, "Upload {UploadId} could not be resumed after a failed finish", session.Id);
        }
    }

    /// <summary>The digest of the first <paramref name="size"/> bytes, read back from the store (no hash state at hand).</summary>
    private async Task<Digest> HashAsync(UploadSession session, string algorithm, long size, CancellationToken cancellationToken)
    {
        using var hasher = Digest.CreateHasher(algorithm);
        await using var reader = await driver.ReaderAsync(session.DataPath, 0, cancellationToken);
        if (!await StreamCopy.HashAsync(reader, hasher, size, cancellationToken))
            throw new IOException($"upload {session.Id} holds fewer than {size} bytes");
        return Digest.FromHash(algorithm, hasher.GetHashAndReset());
    }

    /// <summary>Appends the request body, feeding the hash state when there is one; the caller takes it back on failure.</summary>
    private static async Task WriteChunkAsync(IStorageWriter writer, Stream body, UploadHashStates.State? state, long? expectedLength, CancellationToken cancellationToken)
    {
        var written = await StreamCopy.CopyAsync(body, writer, state?.Hasher, cancellationToken);
        if (expectedLength is { } length && written != length)
            throw new SizeInvalidException($"received {written} bytes, expected {length}");
    }

    /// <summary>The session's data for writing; one writer per session at a time, across processes.</summary>
    private async Task<IStorageWriter> OpenAsync(UploadSession session, CancellationToken cancellationToken)
    {
        IStorageWriter writer;
        try
        {
            writer = await driver.WriterAsync(session.DataPath, append: true, cancellationToken);
        }
        catch (PathNotFoundException)
        {
            throw new BlobUploadUnknownException(session.Id);
        }
        catch (PathBusyException)
        {
            throw new UploadRangeException(await driver.TryStatAsync(session.DataPath, cancellationToken) is { } busy ? busy.Size : 0);
        }
        // Checked once the data is ours: a session finished or cancelled meanwhile must get nothing more. On any
        // failure here (the client gone, so the check is cancelled) the writer is let go, or the session would stay
        // busy, every later chunk refused, until the process ends.
        try
        {
            if (!await driver.FileExistsAsync(session.MarkerPath, cancellationToken)) throw new BlobUploadUnknownException(session.Id);
            return writer;
        }
        catch
        {
            await writer.DisposeAsync();
            throw;
        }
    }

    [GeneratedRegex("^[a-f0-9]{32}\\z", RegexOptions.CultureInvariant)]
    private static partial Regex UploadIdPattern();
}
