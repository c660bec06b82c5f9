using System.IO.Enumeration;
using System.Text.RegularExpressions;

namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// Driver paths mapped one-to-one onto files below a root folder, with the guarantees the registry has always had:
/// whole-object writes go to a dot-named temporary beside the target, are fsynced and renamed over it, and the folder
/// is fsynced (<see cref="AtomicFile"/>, <see cref="DurableDirectory"/>; within a <see cref="DeferredSync"/> scope the
/// folder syncs of writes, moves and deletes are made at the scope's end, once per folder); conditional operations hold an flock on a
/// per-path lock file (<see cref="FileLock"/>) while they compare content and write, so they are atomic across
/// processes sharing the root. Dot-named files (temporaries, default lock files) are never listed.
/// </summary>
public sealed partial class FilesystemDriver : IStorageDriver, ISweepsOwnTemporaries, IReadsMissingCheaply
{
    public const string DriverName = "filesystem";

    private readonly string root;
    private readonly Func<string, string?> lockPathOf;

    /// <param name="rootDirectory">The folder holding everything; created if missing.</param>
    /// <param name="lockPathOf">
    /// The lock file of a path used with conditional operations, as a driver path, or null for the default
    /// "/dir/.name.lock". Lets a layout that already has its lock files elsewhere keep them there, so processes of an
    /// older version sharing the root keep locking the same files.
    /// </param>
    public FilesystemDriver(string rootDirectory, Func<string, string?>? lockPathOf = null)
    {
        root = Path.GetFullPath(rootDirectory);
        Directory.CreateDirectory(root);
        this.lockPathOf = lockPathOf ?? (_ => null);
    }

    public string Name => DriverName;

    public async Task<byte[]> GetContentAsync(string path, CancellationToken cancellationToken)
    {
        StoragePath.Validate(Name, path);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            return await File.ReadAllBytesAsync(Local(path), cancellationToken);
        }
        catch (Exception e) when (Translate(e, path) is { } translated)
        {
            throw translated;
        }
    }

    public async Task<byte[]?> TryGetContentAsync(string path, CancellationToken cancellationToken)
    {
        StoragePath.Validate(Name, path);
        cancellationToken.ThrowIfCancellationRequested();
        var local = Local(path);
        if (!File.Exists(local)) return null;
        try
        {
            return await File.ReadAllBytesAsync(local, cancellationToken);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null; // deleted since the check
        }
        catch (Exception e) when (Translate(e, path) is { } translated)
        {
            throw translated;
        }
    }

    public async Task PutContentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        StoragePath.Validate(Name, path);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            await AtomicFile.WriteAllBytesAsync(Local(path), content, cancellationToken);
        }
        catch (Exception e) when (Translate(e, path) is { } translated)
        {
            throw translated;
        }
    }

    public async Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken)
    {
        StoragePath.Validate(Name, path);
        cancellationToken.ThrowIfCancellationRequested();
        var content = await ReadIfPresentAsync(path, cancellationToken);
        return content is null ? null : new VersionedContent(content, StorageVersion.OfContent(content));
    }

    public async Task<bool> PutIfAbsentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        StoragePath.Validate(Name, path);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            await using var held = await LockAsync(path, cancellationToken);
            var local = Local(path);
            if (File.Exists(local) || Directory.Exists(local)) return false;
            await AtomicFile.WriteAllBytesAsync(local, content, cancellationToken);
            return true;
        }
        catch (Exception e) when (Translate(e, path) is { } translated)
        {
            throw translated;
        }
    }

    public Task<bool> PutIfVersionMatchesAsync(string path, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken) =>
        IfVersionMatchesAsync(path, expected, () => AtomicFile.WriteAllBytesAsync(Local(path), content, cancellationToken), cancellationToken);

    public Task<bool> DeleteIfVersionMatchesAsync(string path, StorageVersion expected, CancellationToken cancellationToken) =>
        IfVersionMatchesAsync(path, expected, () =>
        {
            DeleteFileDurably(Local(path));
            return Task.CompletedTask;
        }, cancellationToken);

    /// <summary>Under the path's lock: does <paramref name="change"/> only if the object still has the expected version.</summary>
    private async Task<bool> IfVersionMatchesAsync(string path, StorageVersion expected, Func<Task> change, CancellationToken cancellationToken)
    {
        StoragePath.Validate(Name, path);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            await using var held = await LockAsync(path, cancellationToken);
            var current = await ReadIfPresentAsync(path, cancellationToken);
            if (current is null || StorageVersion.OfContent(current) != expected) return false;
            await change();
            return true;
        }
        catch (Exception e) when (Translate(e, path) is { } translated)
        {
            throw translated;
        }
    }

    public Task<Stream> ReaderAsync(string path, long offset, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        if (offset < 0) throw new InvalidOffsetException(Name, path, offset);
        // Shared access: readers never stop a rename over the file, and a position past the end simply reads nothing.
        // No FileStream buffer: blob bodies are read in pieces of 64 KiB (ranges) to 1 MiB (whole blobs), which a 4 KiB
        // buffer only splits. Sequential read-ahead: readers go from the offset to the end.
        var stream = new FileStream(Local(path), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 0,
            FileOptions.Asynchronous | FileOptions.SequentialScan);
        stream.Position = offset;
        return (Stream)stream;
    });

    public Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        var local = Local(path);
        if (!append) DurableDirectory.Create(Path.GetDirectoryName(local)!);
        // FileShare.None takes an exclusive flock (one writer per path across processes). A new writer truncates only
        // once it holds the lock, so it never cuts the file from under a writer that is still at work.
        var stream = new FileStream(local, append ? FileMode.Open : FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        try
        {
            if (append) stream.Seek(0, SeekOrigin.End);
            else stream.SetLength(0);
            return (IStorageWriter)new Writer(this, path, local, stream, syncFolderOnCommit: !append);
        }
        catch
        {
            // Closed at once, not by a finalizer some time later: its lock would keep the path busy until then.
            stream.Dispose();
            throw;
        }
    });

    public Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        var local = Local(path);
        var file = new FileInfo(local);
        if (file.Exists) return new StorageFileInfo(path, file.Length, file.LastWriteTimeUtc, IsDirectory: false);
        var directory = new DirectoryInfo(local);
        if (directory.Exists) return new StorageFileInfo(path, 0, directory.LastWriteTimeUtc, IsDirectory: true);
        throw new PathNotFoundException(Name, path);
    }, rootAllowed: true);

    public Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        var local = Local(path);
        if (!Directory.Exists(local)) throw new PathNotFoundException(Name, path);
        var names = new FileSystemEnumerable<string>(local, static (ref FileSystemEntry entry) => entry.FileName.ToString(), Everything)
        {
            // Only names a path can have: temporaries and lock files start with a dot and are the driver's own.
            ShouldIncludePredicate = static (ref FileSystemEntry entry) => StoragePath.IsValidComponent(entry.FileName),
        }.Where(name => startAfter is null || string.CompareOrdinal(name, startAfter) > 0);
        if (maxCount == int.MaxValue)
        {
            var all = names.ToList();
            all.Sort(StringComparer.Ordinal);
            return (IReadOnlyList<string>)all;
        }
        // A page of a large folder (or "is there anything", maxCount 1) keeps only the smallest names it has seen.
        var smallest = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (smallest.Count < maxCount) smallest.Add(name);
            else if (maxCount > 0 && string.CompareOrdinal(name, smallest.Max) < 0)
            {
                smallest.Remove(smallest.Max!);
                smallest.Add(name);
            }
        }
        return smallest.ToList();
    }, rootAllowed: true);

    public Task MoveAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken)
    {
        try
        {
            StoragePath.Validate(Name, destinationPath);
        }
        catch (InvalidPathException e)
        {
            return Task.FromException(e);
        }
        return Run(sourcePath, cancellationToken, () =>
        {
            var source = Local(sourcePath);
            // Checked before anything is created, so a missing source leaves no trace at the destination.
            if (!File.Exists(source)) throw new PathNotFoundException(Name, sourcePath);
            var destination = Local(destinationPath);
            var directory = Path.GetDirectoryName(destination)!;
            DurableDirectory.Create(directory);
            // rename(2): atomic, replaces the destination, never exposes a partial file.
            File.Move(source, destination, overwrite: true);
            DeferredSync.SyncOrDefer(directory);
            return true;
        });
    }

    public Task DeleteAsync(string path, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        var local = Local(path);
        if (File.Exists(local))
        {
            DeleteFileDurably(local);
            return true;
        }
        if (!Directory.Exists(local)) throw new PathNotFoundException(Name, path);
        try
        {
            Directory.Delete(local, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Removed by a concurrent delete meanwhile: the outcome asked for.
        }
        DeferredSync.SyncOrDefer(Path.GetDirectoryName(local)!);
        return true;
    });

    public Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken) => Run(path, cancellationToken, () => (Uri?)null);

    public Task<int> SweepTemporariesAsync(string path, DateTimeOffset cutoff, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        var local = Local(path);
        if (!Directory.Exists(local)) return 0;
        var temporaries = new FileSystemEnumerable<(string Path, DateTimeOffset LastWrite)>(local,
            static (ref FileSystemEntry entry) => (entry.ToFullPath(), entry.LastWriteTimeUtc),
            new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint })
        {
            // Exactly what AtomicFile names its temporaries: lock files and data are never matched.
            ShouldIncludePredicate = static (ref FileSystemEntry entry) => !entry.IsDirectory && AtomicTemporaryPattern().IsMatch(entry.FileName),
        };
        var removed = 0;
        foreach (var (file, lastWrite) in temporaries)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (lastWrite <= cutoff && AtomicFile.TryDelete(file)) removed++;
        }
        return removed;
    }, rootAllowed: true);

    [GeneratedRegex(@"^\.[0-9a-f]{32}\.tmp\z", RegexOptions.CultureInvariant)]
    private static partial Regex AtomicTemporaryPattern();

    /// <summary>The OS path of a driver path; only valid driver paths (and the driver's dot-named lock files) get here.</summary>
    private string Local(string path) => path == StoragePath.Root ? root : Path.Join(root, path.AsSpan(1));

    private async Task<byte[]?> ReadIfPresentAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            return await GetContentAsync(path, cancellationToken);
        }
        catch (PathNotFoundException)
        {
            return null; // a concurrent delete is a normal outcome
        }
    }

    private static void DeleteFileDurably(string local)
    {
        File.Delete(local);
        DeferredSync.SyncOrDefer(Path.GetDirectoryName(local)!);
    }

    private async Task<FileLock> LockAsync(string path, CancellationToken cancellationToken)
    {
        var lockPath = lockPathOf(path);
        if (lockPath is not null)
        {
            StoragePath.Validate(Name, lockPath);
            if (lockPath == path) throw new InvalidPathException(Name, path, "a path cannot be its own lock file");
        }
        var local = Local(lockPath ?? StoragePath.Join(StoragePath.Parent(path), $".{StoragePath.Name(path)}.lock"));
        DurableDirectory.Create(Path.GetDirectoryName(local)!);
        return await FileLock.AcquireAsync(local, cancellationToken);
    }

    /// <summary>Runs a synchronous file operation as a task, with its path validated and its failures translated.</summary>
    private Task<T> Run<T>(string path, CancellationToken cancellationToken, Func<T> operation, bool rootAllowed = false)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            StoragePath.Validate(Name, path, rootAllowed);
            return Task.FromResult(operation());
        }
        catch (Exception e)
        {
            return Task.FromException<T>(Translate(e, path) ?? e);
        }
    }

    /// <summary>The driver's error for a failure of the file system, or null to let it through as it is.</summary>
    private StorageDriverException? Translate(Exception e, string path) => e switch
    {
        StorageDriverException => null,
        FileNotFoundException or DirectoryNotFoundException => new PathNotFoundException(Name, path, e),
        // Opening a folder as a file: there is no file at this path.
        UnauthorizedAccessException when Directory.Exists(Local(path)) => new PathNotFoundException(Name, path, e),
        IOException io when Domain.StorageFullException.IsCause(io) => new OutOfSpaceException(Name, path, io),
        IOException io when FileLock.IsHeldElsewhere(io) => new PathBusyException(Name, path, io),
        _ => null,
    };

    private const long WriteBackStep = 8 * 1024 * 1024;
    private const uint SyncFileRangeWrite = 2;
    private static readonly bool WriteBackSupported = OperatingSystem.IsLinux();

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "sync_file_range")]
    private static extern int SyncFileRange(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, long count, uint flags);

    private static readonly EnumerationOptions Everything = new() { AttributesToSkip = 0, IgnoreInaccessible = false };

    /// <summary>Writes straight into the file, which holds an exclusive flock while this writer is open.</summary>
    /// <param name="syncFolderOnCommit">
    /// Whether the writer may have made a new folder entry, which only a folder fsync makes durable. An appending writer
    /// opened an existing file, so its commits need only the file's own fsync (one fsync less per upload chunk).
    /// </param>
    private sealed class Writer(FilesystemDriver driver, string path, string local, FileStream stream, bool syncFolderOnCommit) : IStorageWriter
    {
        private bool ended;

        public long Size => stream.Length;

        /// <summary>Where the write-back of what was written was last started; see <see cref="StartWriteBack"/>.</summary>
        private long writeBackFrom = -1;

        public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            try
            {
                if (writeBackFrom < 0) writeBackFrom = stream.Position; // an appending writer starts where it opened
                await stream.WriteAsync(data, cancellationToken);
                StartWriteBack();
            }
            catch (Exception e) when (driver.Translate(e, path) is { } translated)
            {
                throw translated;
            }
        }

        /// <summary>
        /// Starts the disk write of every full <see cref="WriteBackStep"/> written since the last start, without waiting
        /// for it (sync_file_range, SYNC_FILE_RANGE_WRITE). Otherwise the kernel holds a large layer in dirty pages until
        /// the commit's fsync, which then writes all of it while the client waits (about 1 s per GiB here); started as
        /// the data arrives, the disk works while the rest is received and the fsync finds little left. Only a hint:
        /// a failure is ignored, the commit's fsync reports what matters.
        /// </summary>
        private void StartWriteBack()
        {
            if (!WriteBackSupported) return;
            var position = stream.Position;
            if (position - writeBackFrom < WriteBackStep) return;
            _ = SyncFileRange(stream.SafeFileHandle, writeBackFrom, position - writeBackFrom, SyncFileRangeWrite);
            writeBackFrom = position;
        }

        public Task TruncateAsync(long size, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            try
            {
                ArgumentOutOfRangeException.ThrowIfNegative(size);
                ArgumentOutOfRangeException.ThrowIfGreaterThan(size, stream.Length);
                cancellationToken.ThrowIfCancellationRequested();
                stream.SetLength(size);
                stream.Seek(0, SeekOrigin.End);
                writeBackFrom = -1;
                return Task.CompletedTask;
            }
            catch (Exception e)
            {
                return Task.FromException(driver.Translate(e, path) ?? e);
            }
        }

        /// <summary>Flushed to the OS, not fsynced: another process can append at once; only a commit must survive a power loss.</summary>
        public Task CloseAsync(CancellationToken cancellationToken) => End(() => stream.Flush(flushToDisk: false));

        public Task CancelAsync(CancellationToken cancellationToken) =>
            // Deleted while still locked, so no writer that opens the path meanwhile can lose its bytes to this delete.
            End(() => File.Delete(local));

        public Task CommitAsync(CancellationToken cancellationToken) => End(() =>
        {
            stream.Flush(flushToDisk: true);
            if (syncFolderOnCommit) DurableDirectory.Sync(Path.GetDirectoryName(local)!);
        });

        public Task CommitToAsync(string destinationPath, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            try
            {
                StoragePath.Validate(driver.Name, destinationPath);
            }
            catch (InvalidPathException e)
            {
                return Task.FromException(e);
            }
            var destination = driver.Local(destinationPath);
            var folder = Path.GetDirectoryName(destination)!;
            return End(() =>
            {
                stream.Flush(flushToDisk: true);
                DurableDirectory.Create(folder);
                // First to a private name beside the destination, while our flock still keeps every other writer out
                // (after this rename none can open the file by its old path), then the lock goes: readers of the
                // destination must not meet a file still locked by its writer. Only the destination's folder needs a
                // sync; a rename lost to a crash leaves a dot-temporary, which is swept as debris.
                var staged = Path.Combine(folder, $".{Guid.NewGuid():N}.tmp");
                File.Move(local, staged);
                stream.Dispose();
                try
                {
                    File.Move(staged, destination, overwrite: true);
                }
                catch
                {
                    AtomicFile.TryDelete(staged);
                    throw;
                }
                DurableDirectory.Sync(folder);
            });
        }

        private Task End(Action action)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            ended = true;
            try
            {
                action();
                return Task.CompletedTask;
            }
            catch (Exception e)
            {
                return Task.FromException(driver.Translate(e, path) ?? e);
            }
            finally
            {
                stream.Dispose();
            }
        }

        public async ValueTask DisposeAsync()
        {
            ended = true;
            await stream.DisposeAsync();
        }
    }
}
