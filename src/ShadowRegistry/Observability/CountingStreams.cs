using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Observability;

/// <summary>
/// The request body as it is, counting the bytes read as they pass: nothing is buffered, so an unbounded blob upload
/// streams exactly as before.
/// </summary>
internal sealed class CountingReadStream(Stream inner, Action<long> count) : ReadOnlyStream
{
    public override bool CanRead => inner.CanRead;

    public override int Read(byte[] buffer, int offset, int length) => Counted(inner.Read(buffer, offset, length));

    public override int Read(Span<byte> buffer) => Counted(inner.Read(buffer));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Counted(await inner.ReadAsync(buffer, cancellationToken));

    private int Counted(int read)
    {
        if (read > 0) count(read);
        return read;
    }
}

/// <summary>
/// The response body feature as it is, counting the bytes written through either of its faces (stream or pipe). It
/// replaces the feature rather than <c>Response.Body</c>, so writers using the pipe keep Kestrel's own and nothing
/// needs flushing or completing here; the server's own stream and pipe never call back into these wrappers, so no
/// byte is counted twice.
/// </summary>
internal sealed class CountingResponseBody(IHttpResponseBodyFeature inner, Action<long> count) : IHttpResponseBodyFeature
{
    private CountingWriteStream? stream;
    private CountingPipeWriter? writer;

    public Stream Stream => stream ??= new CountingWriteStream(inner.Stream, count);

    public PipeWriter Writer => writer ??= new CountingPipeWriter(inner.Writer, count);

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

    // Through the counting stream, as the framework's own stream-based feature does it.
    public Task SendFileAsync(string path, long offset, long? length, CancellationToken cancellationToken = default) =>
        SendFileFallback.SendFileAsync(Stream, path, offset, length, cancellationToken);

    public Task CompleteAsync() => inner.CompleteAsync();

    private sealed class CountingWriteStream(Stream inner, Action<long> count) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int length)
        {
            inner.Write(buffer, offset, length);
            count(length);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            count(buffer.Length);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int length, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, length), cancellationToken).AsTask();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken);
            count(buffer.Length);
        }

        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int length) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private sealed class CountingPipeWriter(PipeWriter inner, Action<long> count) : PipeWriter
    {
        public override void Advance(int bytes)
        {
            inner.Advance(bytes);
            count(bytes);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);
        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);
        public override void CancelPendingFlush() => inner.CancelPendingFlush();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;
        public override long UnflushedBytes => inner.UnflushedBytes;

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            count(source.Length);
            return inner.WriteAsync(source, cancellationToken);
        }
    }
}
