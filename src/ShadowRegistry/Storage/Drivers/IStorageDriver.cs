namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// The storage seam, in the spirit of CNCF distribution's StorageDriver: a flat namespace of small objects and
/// streamed files under absolute-style paths (see <see cref="StoragePath"/>). Shaped so that an object store (S3,
/// Azure Blob) can implement it: nothing needs a rename, a lock or a real directory, and every operation maps onto a
/// PUT, GET, conditional PUT/DELETE (If-None-Match / If-Match), prefix listing or multipart upload.
/// <para>
/// Failures are <see cref="StorageDriverException"/>s (path not found, invalid path, invalid offset, storage full,
/// busy) whose messages name the driver. Nothing here knows about HTTP or the registry's errors.
/// </para>
/// </summary>
public interface IStorageDriver
{
    /// <summary>Short name used in error messages and configuration ("filesystem", "inmemory").</summary>
    string Name { get; }

    /// <summary>The whole content of a small object; <see cref="PathNotFoundException"/> when there is none.</summary>
    Task<byte[]> GetContentAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the whole object atomically: a reader sees the old content or the new one, never a mix, and never a
    /// moment where the path is missing (no delete-then-write). Once this returns, the write is durable.
    /// </summary>
    Task PutContentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>
    /// The content with its version (ETag-like), or null when there is none. A version identifies content, not a
    /// write: rewriting the same bytes may keep the same version (as an S3 ETag does).
    /// </summary>
    Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken);

    /// <summary>Writes the object only if the path holds none (If-None-Match: *); false when it does.</summary>
    /// <remarks>
    /// Conditional operations on one path are atomic with respect to each other, across processes sharing the store.
    /// A path that is read-modify-written must be changed only through them: on the filesystem a plain
    /// <see cref="PutContentAsync"/> does not wait for a conditional operation in progress (it would otherwise need
    /// a lock file beside every object).
    /// </remarks>
    Task<bool> PutIfAbsentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>Replaces the object only if it still has version <paramref name="expected"/> (If-Match); false otherwise, also when it is gone.</summary>
    Task<bool> PutIfVersionMatchesAsync(string path, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken);

    /// <summary>Deletes the object only if it still has version <paramref name="expected"/> (If-Match); false otherwise, also when it is gone.</summary>
    Task<bool> DeleteIfVersionMatchesAsync(string path, StorageVersion expected, CancellationToken cancellationToken);

    /// <summary>
    /// A stream of the file from <paramref name="offset"/>: negative gives <see cref="InvalidOffsetException"/>, at or
    /// past the end an empty stream. The caller disposes it.
    /// </summary>
    Task<Stream> ReaderAsync(string path, long offset, CancellationToken cancellationToken);

    /// <summary>
    /// A writer for a file written over several requests, possibly by several processes in turn. New
    /// (<paramref name="append"/> false) starts empty; append resumes what earlier writers left (closed, not
    /// committed) or a committed file, and gives <see cref="PathNotFoundException"/> when there is neither. One
    /// writer per path at a time: another one gets <see cref="PathBusyException"/>. Until
    /// <see cref="IStorageWriter.CommitAsync"/>, whether readers can see the bytes is the driver's business (the
    /// filesystem shows them, object stores do not): publish by committing, then moving.
    /// </summary>
    Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken);

    /// <summary>Size, modification time and kind of a path; <see cref="PathNotFoundException"/> when there is nothing there.</summary>
    Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// The names (not paths) of the direct children of <paramref name="path"/>, files and directories, in ordinal
    /// order: those after <paramref name="startAfter"/> when given, at most <paramref name="maxCount"/>.
    /// <see cref="PathNotFoundException"/> when the path is not a directory. A directory emptied of its children
    /// may list as empty or be gone, depending on the driver.
    /// </summary>
    Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken);

    /// <summary>
    /// Moves a file, replacing the destination (atomically where the store can: readers of the destination see the
    /// old file or the new one). A missing source gives <see cref="PathNotFoundException"/> and leaves the
    /// destination untouched. Durable once this returns.
    /// </summary>
    Task MoveAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes a file, or a directory with everything below it; <see cref="PathNotFoundException"/> when there is
    /// nothing. "/a" never touches "/ab". Durable once this returns.
    /// </summary>
    Task DeleteAsync(string path, CancellationToken cancellationToken);

    /// <summary>A URL from which a client can fetch the file directly (e.g. a presigned object-store URL), or null: serve it yourself.</summary>
    Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken);
}

/// <summary>
/// A file being written. <see cref="Size"/> counts everything written to the path so far, by earlier writers too.
/// Exactly one of Close, Cancel or Commit ends it; disposing an unended writer closes it.
/// </summary>
public interface IStorageWriter : IAsyncDisposable
{
    long Size { get; }

    Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>
    /// Cuts the file back to <paramref name="size"/> bytes (at most <see cref="Size"/>; earlier writers' bytes
    /// included), so later writes continue from there. Lets a chunk that failed part-way be taken back, so a resumable
    /// upload holds only what its client was told it holds.
    /// </summary>
    Task TruncateAsync(long size, CancellationToken cancellationToken);

    /// <summary>Ends this writer keeping what it wrote, so a later writer (any process) can append.</summary>
    Task CloseAsync(CancellationToken cancellationToken);

    /// <summary>Ends this writer and discards the file: afterwards the path does not exist.</summary>
    Task CancelAsync(CancellationToken cancellationToken);

    /// <summary>Ends this writer and makes the file final and durable: readable at its path on every driver.</summary>
    Task CommitAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Ends this writer and publishes what it wrote at <paramref name="destinationPath"/> instead of its own path,
    /// replacing the destination as <see cref="IStorageDriver.MoveAsync"/> does (readers see the old object or the
    /// whole new one); afterwards the writer's own path does not exist. Durable once this returns. One step where a
    /// commit and a move would be two: the filesystem need not make the temporary's folder durable first, and an
    /// object store can complete a multipart upload straight at the destination instead of copying it.
    /// </summary>
    Task CommitToAsync(string destinationPath, CancellationToken cancellationToken);
}

/// <summary>An opaque version of an object's content, compared for equality only (an ETag, or a content hash).</summary>
public sealed record StorageVersion(string Value)
{
    /// <summary>The version of drivers without ETags of their own: a hash of the content, so it changes whenever the content does.</summary>
    public static StorageVersion OfContent(ReadOnlySpan<byte> content) =>
        new(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content)));

    public override string ToString() => Value;
}

public sealed record VersionedContent(byte[] Content, StorageVersion Version);

/// <summary>What <see cref="IStorageDriver.StatAsync"/> knows; a directory's size is 0.</summary>
public sealed record StorageFileInfo(string Path, long Size, DateTimeOffset ModifiedTime, bool IsDirectory);

/// <summary>
/// A driver that keeps temporaries of its own beside objects (the filesystem's dot-named files written before a
/// rename), never listed: only it can find the ones a killed process left behind.
/// </summary>
public interface ISweepsOwnTemporaries
{
    /// <summary>Deletes its temporaries anywhere below <paramref name="path"/> last written at or before <paramref name="cutoff"/>; returns how many.</summary>
    Task<int> SweepTemporariesAsync(string path, DateTimeOffset cutoff, CancellationToken cancellationToken);
}

/// <summary>
/// A driver over a remote store that can check, before the registry takes requests, that the store is reachable and
/// the credentials work: start-up fails with <see cref="StorageUnavailableException"/> and its reason otherwise.
/// </summary>
public interface IStartupCheck
{
    Task EnsureReadyAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A driver that can tell a missing object without an exception. Reads through a change's view ask several overlays
/// for a tag most of them lack; two exceptions per miss (the store's and the driver's) were a measurable part of
/// such a read.
/// </summary>
public interface IReadsMissingCheaply
{
    /// <summary>The content, or null when the path holds none.</summary>
    Task<byte[]?> TryGetContentAsync(string path, CancellationToken cancellationToken);
}
