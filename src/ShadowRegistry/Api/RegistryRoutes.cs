using System.Text.RegularExpressions;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Api;

/// <summary>
/// Maps /v2 paths to handlers. Repository names contain slashes, so routes are matched right to left with
/// anchored patterns, as CNCF distribution does; the name is validated against the OCI grammar before any
/// handler runs, which is what keeps every name a safe relative path.
/// </summary>
public sealed partial class RegistryRoutes(
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

        if (path is "/v2" or "/v2/") return OnlyGet(method, () => baseEndpoints.VersionCheck(context));
        if (path is "/v2/_catalog") return OnlyGet(method, () => tagEndpoints.CatalogAsync(context));

        Match match;
        if ((match = TagsRoute().Match(path)).Success)
        {
            var name = Name(match);
            return OnlyGet(method, () => tagEndpoints.ListAsync(context, name));
        }
        if ((match = ManifestRoute().Match(path)).Success)
        {
            var name = Name(match);
            var reference = match.Groups["reference"].Value;
            return method switch
            {
                "GET" or "HEAD" => manifestEndpoints.GetAsync(context, name, reference),
                "PUT" => manifestEndpoints.PutAsync(context, name, reference),
                "DELETE" => manifestEndpoints.DeleteAsync(context, name, reference),
                _ => throw MethodNotAllowed(method),
            };
        }
        if ((match = UploadStartRoute().Match(path)).Success)
        {
            var name = Name(match);
            return method == "POST" ? uploadEndpoints.StartAsync(context, name) : throw MethodNotAllowed(method);
        }
        if ((match = UploadRoute().Match(path)).Success)
        {
            var name = Name(match);
            var id = match.Groups["id"].Value;
            return method switch
            {
                "GET" => uploadEndpoints.StatusAsync(context, name, id),
                "PATCH" => uploadEndpoints.PatchAsync(context, name, id),
                "PUT" => uploadEndpoints.FinishAsync(context, name, id),
                "DELETE" => uploadEndpoints.CancelAsync(context, name, id),
                _ => throw MethodNotAllowed(method),
            };
        }
        if ((match = BlobRoute().Match(path)).Success)
        {
            var name = Name(match);
            var digest = ParseDigest(match.Groups["digest"].Value);
            return method switch
            {
                "GET" or "HEAD" => blobEndpoints.GetAsync(context, name, digest),
                "DELETE" => blobEndpoints.DeleteAsync(context, name, digest),
                _ => throw MethodNotAllowed(method),
            };
        }
        if ((match = ReferrersRoute().Match(path)).Success)
        {
            var name = Name(match);
            var digest = ParseDigest(match.Groups["digest"].Value);
            return OnlyGet(method, () => referrerEndpoints.ListAsync(context, name, digest));
        }
        throw RegistryError.NotFound(path);
    }

    private static Task OnlyGet(string method, Func<Task> handler) =>
        method is "GET" or "HEAD" ? handler() : throw MethodNotAllowed(method);

    private static RegistryError MethodNotAllowed(string method) => RegistryError.Unsupported($"method {method} is not supported here");

    private static RepositoryName Name(Match match)
    {
        var value = match.Groups["name"].Value;
        return RepositoryName.TryParse(value, out var name) ? name : throw RegistryError.NameInvalid(value);
    }

    public static Digest ParseDigest(string value) =>
        Digest.TryParse(value, out var digest) ? digest : throw RegistryError.DigestInvalid($"invalid or unsupported digest '{value}'");

    [GeneratedRegex("^/v2/(?<name>.+)/tags/list$", RegexOptions.CultureInvariant)]
    private static partial Regex TagsRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/manifests/(?<reference>[^/]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex ManifestRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/blobs/uploads/?$", RegexOptions.CultureInvariant)]
    private static partial Regex UploadStartRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/blobs/uploads/(?<id>[^/]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex UploadRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/blobs/(?<digest>[^/]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex BlobRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/referrers/(?<digest>[^/]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex ReferrersRoute();
}
