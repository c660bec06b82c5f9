using ShadowRegistry.Domain;

namespace ShadowRegistry.Hosting;

/// <summary>
/// The request body, with failures of the body itself told apart from failures of whatever it is copied to: Kestrel
/// reports malformed framing (a chunk size that overflows, say) as a plain IOException, which would otherwise look
/// like a storage failure and become a 500. A read that fails is the client's doing: 400.
/// </summary>
public sealed class ClientBodyStream(Stream inner) : ReadOnlyStream
{
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await inner.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException e) when (e is not BadHttpRequestException && !cancellationToken.IsCancellationRequested)
        {
            throw new BadHttpRequestException($"the request body is malformed or was cut off: {e.Message}", StatusCodes.Status400BadRequest, e);
        }
    }
}
