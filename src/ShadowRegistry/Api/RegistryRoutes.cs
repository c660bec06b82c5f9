using Microsoft.AspNetCore.Http.Features;
using Serilog;
using ShadowRegistry.Domain;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>
/// Dispatches /v2 requests to the endpoint classes. The repository name is validated against the OCI grammar
/// before any handler runs, which is what keeps every name a safe relative path, and then resolved to the local
/// repository and upstream it stands for.
/// </summary>
public sealed class RegistryRoutes(
    BaseEndpoints baseEndpoints,
    BlobEndpoints blobEndpoints,
    UploadEndpoints uploadEndpoints,
    ManifestEndpoints manifestEndpoints,
    TagEndpoints tagEndpoints,
    ReferrerEndpoints referrerEndpoints,
    TargetResolver targets,
    IDiagnosticContext diagnostics)
{
    public async Task DispatchAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        var method = context.Request.Method;
        var route = RouteMatch.Of(context) ?? throw RegistryError.NotFound(path);
        SetBodyLimit(context, route);
        if (route.Kind is RouteKind.VersionCheck or RouteKind.Catalog)
        {
            // Through a view these answer as at the root, once the change is known to be live.
            if (route.Change is not null) await targets.ViewAsync(route.Change, context.RequestAborted);
            await (route.Kind == RouteKind.VersionCheck
                ? OnlyGet(method, () => baseEndpoints.VersionCheck(context))
                : OnlyGet(method, () => tagEndpoints.CatalogAsync(context)));
            return;
        }
        var target = await targets.ResolveAsync(route, context.Request.Query["ns"], context.RequestAborted);
        if (target.View is { } view)
        {
            diagnostics.Set("ChangeId", view.Id.Value);
        }
        await (route.Kind switch
        {
            RouteKind.Tags => OnlyGet(method, () => tagEndpoints.ListAsync(context, target)),
            RouteKind.Manifest => method switch
            {
                "GET" or "HEAD" => manifestEndpoints.GetAsync(context, target, route.Parameter),
                "PUT" => manifestEndpoints.PutAsync(context, target, route.Parameter),
                "DELETE" => manifestEndpoints.DeleteAsync(context, target, route.Parameter),
                _ => throw MethodNotAllowed(method),
            },
            RouteKind.UploadStart => method == "POST" ? uploadEndpoints.StartAsync(context, target) : throw MethodNotAllowed(method),
            RouteKind.Upload => method switch
            {
                "GET" => uploadEndpoints.StatusAsync(context, target, route.Parameter),
                "PATCH" => uploadEndpoints.PatchAsync(context, target, route.Parameter),
                "PUT" => uploadEndpoints.FinishAsync(context, target, route.Parameter),
                "DELETE" => uploadEndpoints.CancelAsync(context, target, route.Parameter),
                _ => throw MethodNotAllowed(method),
            },
            RouteKind.Blob => method switch
            {
                "GET" or "HEAD" => blobEndpoints.GetAsync(context, target, ParseDigest(route.Parameter)),
                "DELETE" => blobEndpoints.DeleteAsync(context, target, ParseDigest(route.Parameter)),
                _ => throw MethodNotAllowed(method),
            },
            RouteKind.Referrers => OnlyGet(method, () => referrerEndpoints.ListAsync(context, target, ParseDigest(route.Parameter))),
            _ => throw RegistryError.NotFound(path),
        });
    }

    /// <summary>
    /// Blob uploads stream to disk, so their bodies are unbounded. A manifest PUT bounds itself: it reads at most
    /// Registry:MaxManifestBytes + 1 bytes and answers 413 MANIFEST_INVALID past that (or at once, from
    /// Content-Length), and the server then drains or drops the rest without keeping it. Everything else keeps the
    /// server-wide limit.
    /// </summary>
    private static void SetBodyLimit(HttpContext context, RouteMatch route)
    {
        var feature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is null || feature.IsReadOnly) return;
        if (route.Kind is RouteKind.UploadStart or RouteKind.Upload || route.Kind == RouteKind.Manifest && HttpMethods.IsPut(context.Request.Method))
            feature.MaxRequestBodySize = null;
    }

    private static Task OnlyGet(string method, Func<Task> handler) =>
        method is "GET" or "HEAD" ? handler() : throw MethodNotAllowed(method);

    private static RegistryError MethodNotAllowed(string method) => RegistryError.Unsupported($"method {method} is not supported here");


    public static Digest ParseDigest(string value) =>
        Digest.TryParse(value, out var digest) ? digest : throw new DigestInvalidException($"invalid or unsupported digest '{value}'");
}
