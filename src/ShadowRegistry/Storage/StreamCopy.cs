using System.Buffers;
using System.Security.Cryptography;

namespace ShadowRegistry.Storage;

internal static class StreamCopy
{
    private const int BufferSize = 128 * 1024;

    /// <summary>Copies into a driver's writer with a pooled buffer, feeding the optional hasher on the way: constant memory whatever the size.</summary>
    public static Task<long> CopyAsync(Stream source, Drivers.IStorageWriter destination, IncrementalHash? hasher, CancellationToken cancellationToken) =>
        CopyAsync(source, destination.WriteAsync, hasher, cancellationToken);

    /// <summary>The same into a blob writer, which hashes for itself.</summary>
    public static Task<long> CopyAsync(Stream source, BlobWriter destination, CancellationToken cancellationToken) =>
        CopyAsync(source, destination.WriteAsync, null, cancellationToken);

    private static async Task<long> CopyAsync(Stream source, Func<ReadOnlyMemory<byte>, CancellationToken, Task> write, IncrementalHash? hasher,
        CancellationToken cancellationToken)
    {
        // Two buffers: the next piece is received (and hashed) while the previous one is being written, so the network,
        // the hash and the disk work at once; no byte is read twice. 128 KiB each: 1 MiB pieces (the size of Kestrel's
        // request buffer) doubled the server's CPU per pushed GiB (docs/benchmark.md).
        var pool = ArrayPool<byte>.Shared;
        byte[] current = pool.Rent(BufferSize), other = pool.Rent(BufferSize);
        Task? writing = null;
        try
        {
            long total = 0;
            int read;
            // Fill the buffer before each write: request bodies arrive in small pieces, disk writes should not.
            while ((read = await source.ReadAtLeastAsync(current.AsMemory(0, BufferSize), BufferSize, throwOnEndOfStream: false, cancellationToken)) > 0)
            {
                hasher?.AppendData(current, 0, read);
                if (writing is not null) await writing;
                writing = write(current.AsMemory(0, read), cancellationToken);
                total += read;
                (current, other) = (other, current);
            }
            if (writing is not null) await writing;
            writing = null;
            return total;
        }
        finally
        {
            // A write still running (the read failed meanwhile) must end before its buffer goes back to the pool.
            if (writing is not null)
            {
                try
                {
                    await writing;
                }
                catch (Exception)
                {
                    // The read's failure is the one reported.
                }
            }
            pool.Return(current);
            pool.Return(other);
        }
    }

    /// <summary>Hashes the first <paramref name="length"/> bytes; false when the stream ends before.</summary>
    public static async Task<bool> HashAsync(Stream source, IncrementalHash hasher, long length, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            var left = length;
            while (left > 0)
            {
                var read = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(BufferSize, left)), cancellationToken);
                if (read == 0) return false;
                hasher.AppendData(buffer, 0, read);
                left -= read;
            }
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads a small body whole (manifests), or returns null as soon as it passes <paramref name="limit"/> bytes.</summary>
    public static async Task<byte[]?> ReadLimitedAsync(Stream source, int limit, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await source.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit) return null;
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }
}
