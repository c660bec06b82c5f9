namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// The objects behind one or more <see cref="InMemoryDriver"/>s. Drivers sharing a store see each other's writes,
/// conditional operations and open writers, as processes sharing a storage root or a bucket do.
/// </summary>
public sealed class InMemoryStore(TimeProvider? time = null)
{
    internal readonly Lock Gate = new();

    /// <summary>Committed objects by path; each content array is immutable once stored, so readers need no copy.</summary>
    internal readonly SortedDictionary<string, (byte[] Content, DateTimeOffset Modified)> Objects = new(StringComparer.Ordinal);

    /// <summary>Files being written and not yet committed: invisible to readers, as an unfinished multipart upload is.</summary>
    internal readonly Dictionary<string, MemoryStream> Pending = new(StringComparer.Ordinal);

    /// <summary>Paths with an open writer.</summary>
    internal readonly HashSet<string> Writing = new(StringComparer.Ordinal);

    internal TimeProvider Time { get; } = time ?? TimeProvider.System;
}

/// <summary>
/// A thread-safe driver holding everything in memory, for tests. It behaves like an object store: directories exist
/// only through the objects below them, and a file being written is readable only once committed.
/// </summary>
public sealed class InMemoryDriver(InMemoryStore store) : IStorageDriver
{
    public const string DriverName = "inmemory";

    public InMemoryDriver() : this(new InMemoryStore())
    {
    }

    public string Name => DriverName;

    public Task<byte[]> GetContentAsync(string path, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
        store.Objects.TryGetValue(path, out var entry) ? entry.Content : throw new PathNotFoundException(Name, path));

    public Task PutContentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
        Store(path, content));

    public Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
        store.Objects.TryGetValue(path, out var entry) ? new VersionedContent(entry.Content, StorageVersion.OfContent(entry.Content)) : null);

    public Task<bool> PutIfAbsentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
        !store.Objects.ContainsKey(path) && !IsDirectory(path) && Store(path, content));

    public Task<bool> PutIfVersionMatchesAsync(string path, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken) =>
        Run(path, cancellationToken, () => Matches(path, expected) && Store(path, content));

    public Task<bool> DeleteIfVersionMatchesAsync(string path, StorageVersion expected, CancellationToken cancellationToken) =>
        Run(path, cancellationToken, () => Matches(path, expected) && store.Objects.Remove(path));

    public Task<Stream> ReaderAsync(string path, long offset, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        if (offset < 0) throw new InvalidOffsetException(Name, path, offset);
        if (!store.Objects.TryGetValue(path, out var entry)) throw new PathNotFoundException(Name, path);
        return (Stream)new MemoryStream(entry.Content, writable: false) { Position = offset };
    });

    public Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        if (store.Writing.Contains(path)) throw new PathBusyException(Name, path);
        if (!append || !store.Pending.TryGetValue(path, out var data))
        {
            data = new MemoryStream();
            if (append)
            {
                // Appending to a committed file starts from its content, as the filesystem does.
                if (!store.Objects.TryGetValue(path, out var committed)) throw new PathNotFoundException(Name, path);
                data.Write(committed.Content);
            }
            store.Pending[path] = data;
        }
        store.Writing.Add(path);
        return (IStorageWriter)new Writer(store, Name, path, data);
    });

    public Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        if (store.Objects.TryGetValue(path, out var entry)) return new StorageFileInfo(path, entry.Content.Length, entry.Modified, IsDirectory: false);
        var below = Below(path).ToList();
        if (below.Count == 0 && path != StoragePath.Root) throw new PathNotFoundException(Name, path);
        // A directory changes whenever something below it does.
        var modified = below.Count == 0 ? DateTimeOffset.MinValue : below.Max(key => store.Objects[key].Modified);
        return new StorageFileInfo(path, 0, modified, IsDirectory: true);
    }, rootAllowed: true);

    public Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        var prefix = path == StoragePath.Root ? StoragePath.Root : path + "/";
        var children = Below(path).Select(key => key[prefix.Length..].Split('/')[0]).Distinct().ToList();
        if (children.Count == 0 && path != StoragePath.Root) throw new PathNotFoundException(Name, path);
        IEnumerable<string> page = children.Order(StringComparer.Ordinal);
        if (startAfter is not null) page = page.Where(name => string.CompareOrdinal(name, startAfter) > 0);
        return (IReadOnlyList<string>)page.Take(maxCount).ToList();
    }, rootAllowed: true);

    public Task MoveAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken) => Run(sourcePath, cancellationToken, () =>
    {
        StoragePath.Validate(Name, destinationPath);
        if (!store.Objects.Remove(sourcePath, out var entry)) throw new PathNotFoundException(Name, sourcePath);
        store.Objects[destinationPath] = entry;
        return true;
    });

    public Task DeleteAsync(string path, CancellationToken cancellationToken) => Run(path, cancellationToken, () =>
    {
        // Files being written below the path go too (an abandoned upload is deleted as a folder), open writers or not.
        var prefix = path + "/";
        var pending = store.Pending.Keys.Where(key => key == path || key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        var committed = Below(path).ToList();
        if (store.Objects.ContainsKey(path)) committed.Add(path);
        if (committed.Count == 0 && pending.Count == 0) throw new PathNotFoundException(Name, path);
        foreach (var key in committed) store.Objects.Remove(key);
        foreach (var key in pending) store.Pending.Remove(key);
        return true;
    });

    public Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken) => Run(path, cancellationToken, () => (Uri?)null);

    /// <summary>Committed objects strictly below <paramref name="path"/> ("/a" never matches "/ab"). Under the gate.</summary>
    private IEnumerable<string> Below(string path)
    {
        var prefix = path == StoragePath.Root ? StoragePath.Root : path + "/";
        return store.Objects.Keys.Where(key => key.StartsWith(prefix, StringComparison.Ordinal));
    }

    private bool IsDirectory(string path) => Below(path).Any();

    private bool Matches(string path, StorageVersion expected) =>
        store.Objects.TryGetValue(path, out var entry) && StorageVersion.OfContent(entry.Content) == expected;

    /// <summary>Stores a copy of the content (the caller may reuse its buffer). Under the gate.</summary>
    private bool Store(string path, ReadOnlyMemory<byte> content)
    {
        store.Objects[path] = (content.ToArray(), store.Time.GetUtcNow());
        return true;
    }

    /// <summary>
    /// Runs an operation under the store's gate with its path validated. Every call yields first, as a call to a real
    /// store is a round trip: callers interleave between two calls as they would in production, so a caller that
    /// reads, then writes, expecting nothing in between, fails in tests too.
    /// </summary>
    private async Task<T> Run<T>(string path, CancellationToken cancellationToken, Func<T> operation, bool rootAllowed = false)
    {
        StoragePath.Validate(Name, path, rootAllowed);
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
        lock (store.Gate) return operation();
    }

    /// <summary>Writes into the store's pending buffer for the path, so another driver on the same store can resume it.</summary>
    private sealed class Writer(InMemoryStore store, string driverName, string path, MemoryStream data) : IStorageWriter
    {
        private bool ended;

        public long Size
        {
            get
            {
                lock (store.Gate) return data.Length;
            }
        }

        public Task WriteAsync(ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Step(cancellationToken, ending: false, () =>
        {
            data.Position = data.Length;
            data.Write(content.Span);
        });

        public Task TruncateAsync(long size, CancellationToken cancellationToken) => Step(cancellationToken, ending: false, () =>
        {
            ArgumentOutOfRangeException.ThrowIfNegative(size);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(size, data.Length);
            data.SetLength(size);
        });

        public Task CloseAsync(CancellationToken cancellationToken) => Step(cancellationToken, ending: true, () => { });

        public Task CancelAsync(CancellationToken cancellationToken) => Step(cancellationToken, ending: true, () =>
        {
            store.Pending.Remove(path);
            store.Objects.Remove(path);
        });

        public Task CommitAsync(CancellationToken cancellationToken) => Step(cancellationToken, ending: true, () =>
        {
            store.Objects[path] = (data.ToArray(), store.Time.GetUtcNow());
            store.Pending.Remove(path);
        });

        public Task CommitToAsync(string destinationPath, CancellationToken cancellationToken)
        {
            try
            {
                StoragePath.Validate(driverName, destinationPath);
            }
            catch (InvalidPathException e)
            {
                return Task.FromException(e);
            }
            return Step(cancellationToken, ending: true, () =>
            {
                store.Objects[destinationPath] = (data.ToArray(), store.Time.GetUtcNow());
                store.Pending.Remove(path);
                store.Objects.Remove(path);
            });
        }

        /// <summary>Runs a step under the gate; a step that ends the writer releases the path even when it fails.</summary>
        private Task Step(CancellationToken cancellationToken, bool ending, Action step)
        {
            try
            {
                ObjectDisposedException.ThrowIf(ended, this);
                cancellationToken.ThrowIfCancellationRequested();
                lock (store.Gate)
                {
                    try
                    {
                        // Deleted under the writer (its folder removed): nothing to write into or to commit.
                        if (!store.Pending.TryGetValue(path, out var current) || current != data) throw new PathNotFoundException(driverName, path);
                        step();
                    }
                    finally
                    {
                        if (ending) Release();
                    }
                }
                return Task.CompletedTask;
            }
            catch (Exception e)
            {
                return Task.FromException(e);
            }
        }

        /// <summary>Under the gate.</summary>
        private void Release()
        {
            if (ended) return;
            ended = true;
            store.Writing.Remove(path);
        }

        public ValueTask DisposeAsync()
        {
            lock (store.Gate) Release();
            return ValueTask.CompletedTask;
        }
    }
}
