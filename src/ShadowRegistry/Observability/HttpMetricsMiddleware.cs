using Microsoft.AspNetCore.Http.Features;
using ShadowRegistry.Api;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Observability;

/// <summary>
/// Counts and times every request by route template, method and status, and counts body bytes both ways. It sits
/// outside the error middleware, so it sees the status actually sent, OCI errors included.
/// </summary>
public sealed class HttpMetricsMiddleware(RequestDelegate next, RegistryMetrics metrics, TimeProvider time)
{
    // Anything else would let a client mint label values at will.
    private static readonly HashSet<string> KnownMethods = new(StringComparer.Ordinal) { "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS" };

    public async Task InvokeAsync(HttpContext context)
    {
        var started = time.GetTimestamp();
        var route = RouteLabel(context);
        var method = KnownMethods.Contains(context.Request.Method) ? context.Request.Method : "OTHER";
        var (received, sent) = metrics.BodyBytes(route);
        context.Request.Body = new CountingReadStream(context.Request.Body, received);
        var responseBody = context.Features.Get<IHttpResponseBodyFeature>();
        if (responseBody is not null) context.Features.Set<IHttpResponseBodyFeature>(new CountingResponseBody(responseBody, sent));
        metrics.HttpRequestStarted();
        var failed = false;
        try
        {
            await next(context);
        }
        catch
        {
            failed = true;
            throw;
        }
        finally
        {
            if (responseBody is not null) context.Features.Set(responseBody);
            metrics.HttpRequestEnded(route, method, StatusLabel(context, failed), time.GetElapsedTime(started));
        }
    }

    /// <summary>
    /// The route's template, never the path: /v2 routes as <see cref="RouteMatch"/> parses them, the few fixed paths
    /// outside /v2 by name, and everything else (unknown paths, /v2 paths no route matches) as <c>other</c>.
    /// </summary>
    public static string RouteLabel(HttpContext context)
    {
        if (RouteMatch.Of(context) is { } route) return route.Template;
        var path = context.Request.Path.Value ?? "";
        if (path.StartsWith(Api.ChangeEndpoints.Root, StringComparison.Ordinal))
            return path.EndsWith("/promote", StringComparison.Ordinal) ? Api.ChangeEndpoints.Root + "/{id}/promote"
                : path.Length > Api.ChangeEndpoints.Root.Length + 1 ? Api.ChangeEndpoints.Root + "/{id}" : Api.ChangeEndpoints.Root;
        return path switch
        {
            "/healthz" => "/healthz",
            "/readyz" => "/readyz",
            MetricsOptions.Path => MetricsOptions.Path,
            Challenge.TokenPath => Challenge.TokenPath,
            _ => "other",
        };
    }

    /// <summary>
    /// The status the client got. A request whose client went away before any answer is 499 (as nginx logs it), and
    /// one whose failure escaped every handler before the response started is the 500 the server then sends.
    /// </summary>
    private static string StatusLabel(HttpContext context, bool failed)
    {
        var status = context.Response.HasStarted ? context.Response.StatusCode
            : context.RequestAborted.IsCancellationRequested ? 499
            : failed ? 500
            : context.Response.StatusCode;
        return status.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
