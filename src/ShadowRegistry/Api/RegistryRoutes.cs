using ShadowRegistry.Domain;

namespace ShadowRegistry.Api;

/// <summary>
/// Dispatches /v2 requests to the endpoint classes. The repository name is validated against the OCI grammar
/// before any handler runs, which is what keeps every name a safe relative path.
/// </summary>
public sealed class RegistryRoutes(
    BaseEndpoints baseEndpoints,
    BlobEndpoints blobEndpoints,
    UploadEndpoints uploadEndpoints,
    ManifestEndpoints manifestEndpoints,
    TagEndpoints tagEndpoints,
    ReferrerEndpoints referrerEndpoints)
{
    public Task DispatchAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        var method = context.Request.Method;
        var route = RouteMatch.Parse(path) ?? throw RegistryError.NotFound(path);
        return route.Kind switch
        {
            RouteKind.VersionCheck => OnlyGet(method, () => baseEndpoints.VersionCheck(context)),
            RouteKind.Catalog => OnlyGet(method, () => tagEndpoints.CatalogAsync(context)),
            RouteKind.Tags => OnlyGet(method, () => tagEndpoints.ListAsync(context, Name(route))),
            RouteKind.Manifest => method switch
            {
                "GET" or "HEAD" => manifestEndpoints.GetAsync(context, Name(route), route.Parameter),
                "PUT" => manifestEndpoints.PutAsync(context, Name(route), route.Parameter),
                "DELETE" => manifestEndpoints.DeleteAsync(context, Name(route), route.Parameter),
                _ => throw MethodNotAllowed(method),
            },
            RouteKind.UploadStart => method == "POST" ? uploadEndpoints.StartAsync(context, Name(route)) : throw MethodNotAllowed(method),
            RouteKind.Upload => method switch
            {
                "GET" => uploadEndpoints.StatusAsync(context, Name(route), route.Parameter),
                "PATCH" => uploadEndpoints.PatchAsync(context, Name(route), route.Parameter),
                "PUT" => uploadEndpoints.FinishAsync(context, Name(route), route.Parameter),
                "DELETE" => uploadEndpoints.CancelAsync(context, Name(route), route.Parameter),
                _ => throw MethodNotAllowed(method),
            },
            RouteKind.Blob => method switch
            {
                "GET" or "HEAD" => blobEndpoints.GetAsync(context, Name(route), ParseDigest(route.Parameter)),
                "DELETE" => blobEndpoints.DeleteAsync(context, Name(route), ParseDigest(route.Parameter)),
                _ => throw MethodNotAllowed(method),
            },
            RouteKind.Referrers => OnlyGet(method, () => referrerEndpoints.ListAsync(context, Name(route), ParseDigest(route.Parameter))),
            _ => throw RegistryError.NotFound(path),
        };
    }

    private static Task OnlyGet(string method, Func<Task> handler) =>
        method is "GET" or "HEAD" ? handler() : throw MethodNotAllowed(method);

    private static RegistryError MethodNotAllowed(string method) => RegistryError.Unsupported($"method {method} is not supported here");

    private static RepositoryName Name(RouteMatch route) =>
        RepositoryName.TryParse(route.Name, out var name) ? name : throw RegistryError.NameInvalid(route.Name);

    public static Digest ParseDigest(string value) =>
        Digest.TryParse(value, out var digest) ? digest : throw RegistryError.DigestInvalid($"invalid or unsupported digest '{value}'");
}
