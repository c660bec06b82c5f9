using System.Buffers;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>
/// An upstream response body read up to 1 MiB at a time, for YARP's copy loop, which asks for 64 KiB after a zero-byte
/// read. Read that way, a blob arrived in about 32 KiB per receive call, two calls per piece (8,198 per 256 MiB,
/// traced); read ahead, in about 1 MiB per call (263). Nothing more than the one pooled buffer is held, whatever the
/// blob's size; the caller's cancellation reaches every read of the upstream.
/// </summary>
internal sealed class ReadAheadStream(Stream inner) : ReadOnlyStream
{
    internal const int BufferSize = 1024 * 1024;

    private byte[]? buffer;
    private int start;
    private int end;

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (start == end)
        {
            // YARP's zero-byte read (to take its buffer only once data is there) is answered at once: the buffer
            // here is held anyway, and passed on it cost a receive call of its own per piece.
            if (destination.IsEmpty) return 0;
            buffer ??= ArrayPool<byte>.Shared.Rent(BufferSize);
            // Emptied first: a read that throws leaves nothing stale behind.
            start = end = 0;
            end = await inner.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken);
            if (end == 0) return 0;
        }
        var count = Math.Min(destination.Length, end - start);
        buffer!.AsSpan(start, count).CopyTo(destination.Span);
        start += count;
        return count;
    }

    public override int Read(byte[] destination, int offset, int count) => throw new NotSupportedException("synchronous reads");

    private bool disposed;

    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            inner.Dispose();
            ReturnBuffer();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!disposed)
        {
            disposed = true;
            await inner.DisposeAsync();
            ReturnBuffer();
        }
        GC.SuppressFinalize(this);
    }

    private void ReturnBuffer()
    {
        start = end = 0;
        if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
        buffer = null;
    }
}
