using System.Text;
using System.Text.RegularExpressions;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// Upload sessions. Each session writes only its own file; the file is opened with an exclusive lock while a
/// chunk is appended or the upload is finished, so two requests on one session cannot interleave. Finishing
/// verifies digest and size and hands the file to <see cref="BlobStore.Publish"/>: the only way a blob appears.
/// </summary>
public sealed partial class UploadStore(StorageLayout layout, BlobStore blobs, UploadHashStates hashStates, TimeProvider time, ILogger<UploadStore> logger)
{
    public async Task<UploadSession> StartAsync(RepositoryName repository, CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid().ToString("N");
        var session = new UploadSession(id, repository, layout.Upload(id));
        try
        {
            Directory.CreateDirectory(session.Directory);
            await using (new FileStream(session.DataPath, FileMode.CreateNew, FileAccess.Write)) { }
            await AtomicFile.WriteAllBytesAsync(session.InfoPath, Encoding.UTF8.GetBytes(repository.Value), cancellationToken);
        }
        catch
        {
            // A disk too full for the marker must not leave a half-made session for the janitor.
            End(session);
            throw;
        }
        logger.LogInformation("Started upload {UploadId} to {Repository}", id, repository);
        return session;
    }

    /// <summary>The live session with this id in this repository, or null.</summary>
    public async Task<UploadSession?> FindAsync(RepositoryName repository, string id, CancellationToken cancellationToken)
    {
        if (!UploadIdPattern().IsMatch(id)) return null;
        var session = new UploadSession(id, repository, layout.Upload(id));
        var owner = await AtomicFile.TryReadAllBytesAsync(session.InfoPath, cancellationToken);
        return owner is not null && Encoding.UTF8.GetString(owner) == repository.Value ? session : null;
    }

    public long Size(UploadSession session)
    {
        var info = new FileInfo(session.DataPath);
        return info.Exists ? info.Length : throw new BlobUploadUnknownException(session.Id);
    }

    /// <summary>
    /// Appends one chunk. <paramref name="rangeStart"/> (from Content-Range) must continue the upload; a chunk that
    /// fails part-way (client gone, body shorter than announced) is rolled back so the session stays consistent.
    /// </summary>
    public async Task<long> AppendAsync(UploadSession session, Stream body, long? rangeStart, long? expectedLength, CancellationToken cancellationToken)
    {
        await using var file = OpenExclusive(session);
        var start = file.Length;
        if (rangeStart is { } requested && requested != start) throw new UploadRangeException(start);
        await WriteChunkAsync(session, file, body, expectedLength, cancellationToken);
        return file.Length;
    }

    /// <summary>
    /// Appends the optional last chunk, verifies the whole upload against <paramref name="expected"/> and publishes
    /// it. Returns once the blob is committed: a HEAD issued after this returns the full blob.
    /// </summary>
    public async Task<long> FinishAsync(UploadSession session, Stream body, long? rangeStart, long? expectedLength, Digest expected, CancellationToken cancellationToken)
    {
        await using var file = OpenExclusive(session);
        var start = file.Length;
        if (rangeStart is { } requested && requested != start) throw new UploadRangeException(start);
        var state = await WriteChunkAsync(session, file, body, expectedLength, cancellationToken, finishing: true);
        Digest actual;
        try
        {
            if (state is not null && expected.Algorithm == Digest.Sha256)
            {
                actual = Digest.FromHash(Digest.Sha256, state.Hasher.GetHashAndReset());
            }
            else
            {
                using var hasher = Digest.CreateHasher(expected.Algorithm);
                file.Position = 0;
                await StreamCopy.HashAsync(file, hasher, cancellationToken);
                actual = Digest.FromHash(expected.Algorithm, hasher.GetHashAndReset());
            }
        }
        catch
        {
            file.SetLength(start); // the session goes on, holding what the client was last told
            throw;
        }
        finally
        {
            state?.Hasher.Dispose();
        }

        var size = file.Length;
        if (actual != expected)
        {
            logger.LogWarning("Upload {UploadId} to {Repository} has digest {Actual}, client claimed {Digest}", session.Id, session.Repository, actual, expected);
            End(session);
            throw new DigestInvalidException("provided digest did not match uploaded content", expected, actual);
        }

        // Still holding the lock: publish, then end the session, so a writer that opened the file before the
        // rename finds the session gone once it gets the lock and writes nothing into the published blob.
        try
        {
            blobs.Publish(session.DataPath, actual);
        }
        catch when (File.Exists(session.DataPath))
        {
            // Not renamed (e.g. no space for the blob's folder): the file is still the session's, so take the last
            // chunk back and let the client resume. Once renamed, the handle is the blob's and must not be cut.
            file.SetLength(start);
            throw;
        }
        End(session);
        logger.LogInformation("Upload {UploadId} to {Repository} committed {Digest} ({Size} bytes)", session.Id, session.Repository, actual, size);
        return size;
    }

    public void Cancel(UploadSession session)
    {
        End(session);
        logger.LogInformation("Cancelled upload {UploadId} to {Repository}", session.Id, session.Repository);
    }

    /// <summary>
    /// Removes sessions nobody wrote to for <paramref name="expiry"/>; a session busy right now is skipped. Returns
    /// how many sessions were removed.
    /// </summary>
    public int PurgeAbandoned(TimeSpan expiry, CancellationToken cancellationToken)
    {
        var cutoff = (time.GetUtcNow() - expiry).UtcDateTime;
        var purged = 0;
        foreach (var directory in Directory.EnumerateDirectories(layout.UploadsRoot))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var id = Path.GetFileName(directory);
            var data = new FileInfo(Path.Combine(directory, "data"));
            var lastWrite = data.Exists ? data.LastWriteTimeUtc : Directory.GetLastWriteTimeUtc(directory);
            if (lastWrite > cutoff) continue;
            try
            {
                using (new FileStream(data.FullName, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) { }
            }
            catch (FileNotFoundException)
            {
                // Half-created or half-ended: nothing is writing to it.
            }
            catch (IOException)
            {
                continue; // a request holds it right now
            }
            End(id, directory);
            purged++;
            logger.LogInformation("Removed abandoned upload {UploadId}, idle since {LastWrite:u}", id, lastWrite);
        }
        return purged;
    }

    private void End(UploadSession session) => End(session.Id, session.Directory);

    /// <summary>Ends a session: its marker goes first, so a writer that still holds the file finds it gone.</summary>
    private void End(string id, string directory)
    {
        AtomicFile.TryDelete(Path.Combine(directory, UploadSession.InfoFileName));
        hashStates.Forget(id);
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Already ended by a concurrent request.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning(e, "Could not remove upload folder {UploadId}", id);
        }
    }

    /// <summary>
    /// Appends the request body at the end of the file, all or nothing: on any failure (client gone, body shorter than
    /// announced, disk full) the file is cut back to where it was. When <paramref name="finishing"/>, the bytes are
    /// also fsynced inside that guarantee, since a full disk may only show there, and the hash state is returned
    /// (or null) instead of kept.
    /// </summary>
    private async Task<UploadHashStates.State?> WriteChunkAsync(UploadSession session, FileStream file, Stream body, long? expectedLength,
        CancellationToken cancellationToken, bool finishing = false)
    {
        var start = file.Length;
        var state = hashStates.Take(session.Id, start);
        file.Position = start;
        try
        {
            var written = await StreamCopy.CopyAsync(body, file, state?.Hasher, cancellationToken);
            if (expectedLength is { } length && written != length)
                throw new SizeInvalidException($"received {written} bytes, expected {length}");
            if (finishing) file.Flush(flushToDisk: true);
            else await file.FlushAsync(cancellationToken);
            if (state is not null) state.Offset = file.Length;
        }
        catch
        {
            // Roll the chunk back: the session must hold only whole chunks the client was told about.
            state?.Hasher.Dispose();
            file.SetLength(start);
            throw;
        }
        if (finishing) return state;
        if (state is not null) hashStates.Put(session.Id, state);
        return null;
    }

    private static FileStream OpenExclusive(UploadSession session)
    {
        FileStream file;
        try
        {
            // FileShare.None takes an exclusive advisory lock on Unix: one writer per session at a time.
            file = new FileStream(session.DataPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BlobUploadUnknownException(session.Id);
        }
        catch (IOException)
        {
            var busy = new FileInfo(session.DataPath);
            throw new UploadRangeException(busy.Exists ? busy.Length : 0);
        }
        if (!File.Exists(session.InfoPath))
        {
            file.Dispose();
            throw new BlobUploadUnknownException(session.Id);
        }
        return file;
    }

    [GeneratedRegex("^[a-f0-9]{32}\\z", RegexOptions.CultureInvariant)]
    private static partial Regex UploadIdPattern();
}
