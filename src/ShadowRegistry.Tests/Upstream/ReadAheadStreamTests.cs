using ShadowRegistry.Upstream;

namespace ShadowRegistry.Tests.Upstream;

/// <summary>The upstream body under YARP's copy loop: the same bytes in small reads, zero-byte reads, cancellation, disposal.</summary>
public sealed class ReadAheadStreamTests
{
    [Fact]
    public async Task SmallReadsReturnEveryByteInOrder()
    {
        var content = new byte[ReadAheadStream.BufferSize * 2 + 12345];
        Random.Shared.NextBytes(content);
        await using var stream = new ReadAheadStream(new MemoryStream(content));

        var copy = new MemoryStream();
        var piece = new byte[65536];
        int read;
        while (true)
        {
            // As YARP does: a zero-byte read before each piece, which must consume nothing.
            Assert.Equal(0, await stream.ReadAsync(Memory<byte>.Empty));
            if ((read = await stream.ReadAsync(piece)) == 0) break;
            copy.Write(piece, 0, read);
        }

        Assert.Equal(content, copy.ToArray());
        Assert.Equal(0, await stream.ReadAsync(piece));
    }

    [Fact]
    public async Task ReadsOfTheUpstreamGetTheCallersCancellation()
    {
        using var cancellation = new CancellationTokenSource();
        await cancellation.CancelAsync();
        await using var stream = new ReadAheadStream(new MemoryStream(new byte[100]));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.ReadAsync(new byte[10], cancellation.Token).AsTask());
    }

    [Fact]
    public async Task DisposingItDisposesTheUpstreamStream()
    {
        var inner = new MemoryStream(new byte[100]);
        var stream = new ReadAheadStream(inner);
        Assert.Equal(10, await stream.ReadAsync(new byte[10]));

        await stream.DisposeAsync();

        Assert.False(inner.CanRead);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => stream.ReadAsync(new byte[10]).AsTask());
    }
}
