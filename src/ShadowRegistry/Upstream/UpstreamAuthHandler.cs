using System.Net;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Authenticates upstream requests: sends a cached credential for the request's (upstream, scope), and on a 401
/// answers the challenge and retries once. Any Authorization header from our own client never reaches here:
/// requests are built (or transformed) without it.
/// </summary>
public sealed class UpstreamAuthHandler(UpstreamTokenProvider tokens) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(UpstreamRequestOptions.Registry, out var upstream) ||
            !request.Options.TryGetValue(UpstreamRequestOptions.Scope, out var scope))
            return await base.SendAsync(request, cancellationToken);

        request.Headers.Authorization = tokens.GetCached(upstream, scope);
        var response = await base.SendAsync(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Unauthorized || request.Content is not null) return response;

        var credential = await tokens.AuthenticateAsync(upstream, scope, response.Headers, cancellationToken);
        if (credential is null) return response;
        response.Dispose();
        request.Headers.Authorization = credential;
        return await base.SendAsync(request, cancellationToken);
    }
}
