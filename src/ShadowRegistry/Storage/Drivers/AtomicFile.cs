namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// Whole-file replacement: write a temporary sibling, fsync it, rename it over the target, fsync the folder. Readers
/// see the old file or the new one, never a torn or partial one; a crash leaves at most a dot-named temporary behind;
/// and once this returns, the new file survives a power loss (the rename itself is in the folder's data).
/// </summary>
public static class AtomicFile
{
    public static async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        var directory = Path.GetDirectoryName(path)!;
        DurableDirectory.Create(directory);
        var temp = Path.Combine(directory, $".{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
                await stream.WriteAsync(content, cancellationToken);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        DeferredSync.SyncOrDefer(directory);
    }

    /// <summary>Reads a small metadata file, or null when it does not exist (a concurrent delete is a normal outcome).</summary>
    public static async Task<byte[]?> TryReadAllBytesAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            return await File.ReadAllBytesAsync(path, cancellationToken);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    public static bool TryDelete(string path)
    {
        try
        {
            if (!File.Exists(path)) return false;
            File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Deletes a metadata file and makes the deletion durable; false when it was not there.</summary>
    public static bool TryDeleteDurably(string path)
    {
        if (!TryDelete(path)) return false;
        DeferredSync.SyncOrDefer(Path.GetDirectoryName(path)!);
        return true;
    }
}
