using System.Text.RegularExpressions;

namespace ShadowRegistry.Api;

public enum RouteKind
{
    VersionCheck,
    Catalog,
    Tags,
    Manifest,
    UploadStart,
    Upload,
    Blob,
    Referrers,
}

/// <summary>
/// A /v2 path taken apart: which endpoint, the repository name exactly as the client wrote it (not yet validated),
/// and the endpoint's parameter (reference, digest or upload id). Shared by dispatch and by anything that must
/// know what a request is about before it runs.
/// </summary>
public sealed partial record RouteMatch(RouteKind Kind, string Name, string Parameter)
{
    private static readonly object ItemKey = new();

    /// <summary>
    /// The endpoint's template, e.g. <c>/v2/{name}/manifests/{reference}</c>: what logs and metrics name a request by,
    /// never the path itself (repository names and digests would make every request a label value of its own).
    /// </summary>
    public string Template => Kind switch
    {
        RouteKind.VersionCheck => "/v2/",
        RouteKind.Catalog => "/v2/_catalog",
        RouteKind.Tags => "/v2/{name}/tags/list",
        RouteKind.Manifest => "/v2/{name}/manifests/{reference}",
        RouteKind.UploadStart => "/v2/{name}/blobs/uploads/",
        RouteKind.Upload => "/v2/{name}/blobs/uploads/{id}",
        RouteKind.Blob => "/v2/{name}/blobs/{digest}",
        RouteKind.Referrers => "/v2/{name}/referrers/{digest}",
        _ => throw new InvalidOperationException($"no template for {Kind}"),
    };

    /// <summary>
    /// The request's route, parsed once per request and kept with it: authorization and dispatch both need it, and
    /// must agree on it. Null when the path is not a registry API path.
    /// </summary>
    public static RouteMatch? Of(HttpContext context)
    {
        if (context.Items.TryGetValue(ItemKey, out var cached)) return (RouteMatch?)cached;
        var path = context.Request.Path.Value ?? "";
        var route = path == "/v2" || path.StartsWith("/v2/", StringComparison.Ordinal) ? Parse(path) : null;
        context.Items[ItemKey] = route;
        return route;
    }

    /// <summary>
    /// Repository names contain slashes, so routes are matched right to left with anchored patterns, as CNCF
    /// distribution does. Null when the path is not a registry API path.
    /// </summary>
    public static RouteMatch? Parse(string path)
    {
        if (path is "/v2" or "/v2/") return new RouteMatch(RouteKind.VersionCheck, "", "");
        if (path is "/v2/_catalog") return new RouteMatch(RouteKind.Catalog, "", "");
        foreach (var (kind, pattern) in Routes)
        {
            var match = pattern.Match(path);
            if (match.Success) return new RouteMatch(kind, match.Groups["name"].Value, match.Groups["param"].Value);
        }
        return null;
    }

    // Order matters: uploads before blobs.
    private static readonly (RouteKind Kind, Regex Pattern)[] Routes =
    [
        (RouteKind.Tags, TagsRoute()),
        (RouteKind.Manifest, ManifestRoute()),
        (RouteKind.UploadStart, UploadStartRoute()),
        (RouteKind.Upload, UploadRoute()),
        (RouteKind.Blob, BlobRoute()),
        (RouteKind.Referrers, ReferrersRoute()),
    ];

    [GeneratedRegex("^/v2/(?<name>.+)/tags/list\\z", RegexOptions.CultureInvariant)]
    private static partial Regex TagsRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/manifests/(?<param>[^/]+)\\z", RegexOptions.CultureInvariant)]
    private static partial Regex ManifestRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/blobs/uploads/?\\z", RegexOptions.CultureInvariant)]
    private static partial Regex UploadStartRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/blobs/uploads/(?<param>[^/]+)\\z", RegexOptions.CultureInvariant)]
    private static partial Regex UploadRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/blobs/(?<param>[^/]+)\\z", RegexOptions.CultureInvariant)]
    private static partial Regex BlobRoute();

    [GeneratedRegex("^/v2/(?<name>.+)/referrers/(?<param>[^/]+)\\z", RegexOptions.CultureInvariant)]
    private static partial Regex ReferrersRoute();
}
