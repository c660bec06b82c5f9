namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// A read-only, seekable view of a remote object of known length: reads come from one ranged GET, opened lazily at
/// the current position, and a seek drops it so the next read opens another there. Lets the blob endpoint answer
/// Range requests (which need a seekable stream) from an object store without downloading what is skipped.
/// </summary>
internal sealed class RangedReadStream(long length, long position, Stream? current, Func<long, CancellationToken, Task<Stream>> open) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            if (value == position) return;
            current?.Dispose();
            current = null;
            position = value;
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (position >= length || buffer.IsEmpty) return 0;
        current ??= await open(position, cancellationToken);
        var read = await current.ReadAsync(buffer[..(int)Math.Min(buffer.Length, length - position)], cancellationToken);
        position += read;
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => position + offset,
            SeekOrigin.End => length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin)),
        };
        return position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) current?.Dispose();
        current = null;
        base.Dispose(disposing);
    }
}
