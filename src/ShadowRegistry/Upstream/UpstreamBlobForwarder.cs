using System.Net;
using Yarp.ReverseProxy.Forwarder;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Streams an upstream blob to the client with YARP's forwarder: no buffering, Range and conditional headers
/// passed through. The request goes through the same handler chain as every upstream call (auth, retries before
/// the first byte, circuit breaker), and redirects (Docker Hub's 307 to its CDN) are followed by the registry
/// itself, without the upstream credential, so CI nodes need no route to the CDN.
/// </summary>
public sealed class UpstreamBlobForwarder(IHttpForwarder forwarder, IHttpMessageHandlerFactory handlers, ILogger<UpstreamBlobForwarder> logger)
{
    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        ActivityTimeout = TimeSpan.FromMinutes(2),
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
    };

    // One invoker for every upstream and request: the chain takes the upstream's policies, health and credentials
    // from each request's options. Held for good, the chain is never rotated by the factory; the socket handler's
    // PooledConnectionLifetime still renews connections (and so DNS).
    private readonly HttpMessageInvoker invoker = new(handlers.CreateHandler(UpstreamClient.HttpClientName), disposeHandler: false);

    public async Task ForwardAsync(HttpContext context, UpstreamRepository repository, Digest digest)
    {
        var transformer = new BlobTransformer(repository, digest);
        var error = await forwarder.SendAsync(context, repository.Registry.BaseUri.ToString(), invoker, RequestConfig, transformer);

        if (transformer.Missing) throw new BlobUnknownException(digest);
        if (error == ForwarderError.None) return;
        var exception = context.GetForwarderErrorFeature()?.Exception;
        if (context.RequestAborted.IsCancellationRequested) return;
        logger.LogWarning("Forwarding {Digest} from {Upstream} failed: {Error} {Reason}", digest, repository, error, exception?.Message);
        // Once bytes went out, YARP aborts the connection: the client sees a broken download, never a wrong blob.
        if (!context.Response.HasStarted) throw new UpstreamUnavailableException(repository.Registry.Name, exception?.Message ?? error.ToString());
    }

    private sealed class BlobTransformer(UpstreamRepository repository, Digest digest) : HttpTransformer
    {
        public bool Missing { get; private set; }

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.RequestUri = new Uri(repository.Registry.BaseUri, $"/v2/{repository.Name}/blobs/{digest}");
            // Our client's credentials are for us, never for the upstream; the auth handler adds the upstream's.
            proxyRequest.Headers.Authorization = null;
            proxyRequest.Headers.Remove("Cookie");
            proxyRequest.Headers.Host = null;
            UpstreamRequestOptions.Tag(proxyRequest, repository);
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            if (proxyResponse?.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                // Answered with our own BLOB_UNKNOWN: an upstream challenge must not send our client to the upstream's realm.
                Missing = true;
                return false;
            }
            var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            if (copyBody && proxyResponse is not null)
            {
                // The headers are copied (above); only the body is read another way, 1 MiB at a time. The replaced
                // content is disposed with the request, and the new one disposes the upstream's stream with itself.
                var original = proxyResponse.Content;
                httpContext.Response.RegisterForDispose(original);
                proxyResponse.Content = new StreamContent(new ReadAheadStream(await original.ReadAsStreamAsync(cancellationToken)));
            }
            httpContext.Response.Headers.Remove("WWW-Authenticate");
            httpContext.Response.Headers.Remove("Set-Cookie");
            httpContext.Response.Headers["Docker-Content-Digest"] = digest.ToString();
            return copyBody;
        }
    }
}
