using System.Buffers;

namespace ShadowRegistry.Api;

/// <summary>
/// Sends a whole blob as a 200 response body. The file result the range path uses copies in small pieces with a
/// thread-pool hop per read (about 16,000 reads per 256 MiB, traced); this reads in 1 MiB pieces from a pooled buffer
/// pair and reads the next piece while the previous one is being sent, so the disk and the socket work at once.
/// Memory stays two buffers per download, whatever the blob's size.
/// </summary>
internal static class BlobBody
{
    internal const int BufferSize = 1024 * 1024;

    /// <summary>
    /// The headers the file result gives a 200 (Content-Type, Content-Length, Accept-Ranges, ETag, Last-Modified), then
    /// exactly <paramref name="size"/> bytes of <paramref name="source"/>, which is disposed. A source that ends early
    /// aborts the connection: the client sees a broken download, never a short blob with a 200.
    /// </summary>
    public static async Task SendAsync(HttpContext context, Stream source, long size, string entityTag, DateTimeOffset? lastModified)
    {
        await using var _ = source;
        var response = context.Response;
        var cancellationToken = context.RequestAborted;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = Domain.MediaTypes.OctetStream;
        response.ContentLength = size;
        response.Headers.AcceptRanges = "bytes";
        response.Headers.ETag = entityTag;
        if (lastModified is { } modified) response.Headers.LastModified = modified.ToString("R");
        if (size == 0) return;

        var pool = ArrayPool<byte>.Shared;
        var current = pool.Rent((int)Math.Min(BufferSize, size));
        var next = pool.Rent(current.Length);
        Task<int>? reading = null;
        try
        {
            var left = size;
            var count = await FillAsync(source, current, left, cancellationToken);
            while (true)
            {
                if (count == 0)
                {
                    // The stored object is shorter than its size said (changed underneath): cut the response off.
                    context.Abort();
                    return;
                }
                left -= count;
                // The next piece is read while this one goes out.
                reading = left > 0 ? FillAsync(source, next, left, cancellationToken) : null;
                await response.Body.WriteAsync(current.AsMemory(0, count), cancellationToken);
                if (reading is null) return;
                count = await reading;
                reading = null;
                (current, next) = (next, current);
            }
        }
        finally
        {
            // A read still running must finish before its buffer goes back to the pool.
            if (reading is not null)
            {
                try
                {
                    await reading;
                }
                catch (Exception)
                {
                    // The write's failure (client gone) is what counts.
                }
            }
            pool.Return(current);
            pool.Return(next);
        }
    }

    /// <summary>Fills <paramref name="buffer"/> (at most <paramref name="left"/> bytes); fewer only at the end of the source.</summary>
    private static async Task<int> FillAsync(Stream source, byte[] buffer, long left, CancellationToken cancellationToken) =>
        await source.ReadAtLeastAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), (int)Math.Min(buffer.Length, left), throwOnEndOfStream: false, cancellationToken);
}
