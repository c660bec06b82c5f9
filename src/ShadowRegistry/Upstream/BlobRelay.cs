namespace ShadowRegistry.Upstream;

/// <summary>Where a blob being fetched from upstream is also sent as it arrives: a client's response.</summary>
public sealed class BlobRelay(HttpResponse response, string digest, CancellationToken cancellationToken)
{
    public Task StartAsync(long? length)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = Domain.MediaTypes.OctetStream;
        response.ContentLength = length;
        response.Headers["Docker-Content-Digest"] = digest;
        return response.StartAsync(cancellationToken);
    }

    public Task WriteAsync(ReadOnlyMemory<byte> bytes) => response.Body.WriteAsync(bytes, cancellationToken).AsTask();
}
