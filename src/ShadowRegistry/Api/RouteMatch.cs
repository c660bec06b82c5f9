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
    /// <summary>
    /// The change whose view the request goes through (the path form "/v2/changes/&lt;id&gt;/&lt;name&gt;/..." or the host
    /// form "&lt;id&gt;.&lt;suffix&gt;"), as written and not yet validated; null for the base namespace. <see cref="Name"/> then
    /// still starts with "changes/&lt;id&gt;/" in both forms, so access rules see one name for one repository.
    /// </summary>
    public string? Change { get; init; }

    /// <summary>The repository name inside the view (<see cref="Name"/> without the change prefix).</summary>
    public string RepositoryPart { get; init; } = "";

    /// <summary>Whether the change was addressed by the host rather than by the path.</summary>
    public bool ByHost { get; init; }

    private static readonly object ItemKey = new();

    /// <summary>
    /// The endpoint's template, e.g. <c>/v2/{name}/manifests/{reference}</c>: what logs and metrics name a request by,
    /// never the path itself (repository names and digests would make every request a label value of its own).
    /// </summary>
    public string Template => Change is null ? BaseTemplate : BaseTemplate.Replace("/v2/", "/v2/{change}/", StringComparison.Ordinal);

    private string BaseTemplate => Kind switch
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
        var changes = context.RequestServices?.GetService<Microsoft.Extensions.Options.IOptions<Changes.ChangeOptions>>()?.Value;
        var route = path == "/v2" || path.StartsWith("/v2/", StringComparison.Ordinal) ? Parse(path, changes?.PathPrefix) : null;
        if (route is not null && route.Change is null && changes?.HostSuffix is { Length: > 0 } suffix
            && context.Request.Host.Host is var host && host.EndsWith("." + suffix, StringComparison.OrdinalIgnoreCase)
            && host.Length > suffix.Length + 1)
        {
            // Host form: the whole OCI API of the change at the root path.
            var change = host[..^(suffix.Length + 1)].ToLowerInvariant();
            route = route.Kind is RouteKind.VersionCheck or RouteKind.Catalog
                ? route with { Change = change, ByHost = true }
                : route with { Name = $"{changes.PathPrefix}/{change}/{route.Name}", Change = change, RepositoryPart = route.Name, ByHost = true };
        }
        context.Items[ItemKey] = route;
        return route;
    }

    /// <summary>
    /// Like <see cref="Parse(string)"/>, and when <paramref name="changePrefix"/> is given, a name "&lt;prefix&gt;/&lt;id&gt;/&lt;rest&gt;"
    /// is taken as &lt;rest&gt; seen through change &lt;id&gt;; "/v2/&lt;prefix&gt;/&lt;id&gt;/" is that view's version check.
    /// </summary>
    public static RouteMatch? Parse(string path, string? changePrefix)
    {
        if (changePrefix is { Length: > 0 } && path.StartsWith($"/v2/{changePrefix}/", StringComparison.Ordinal))
        {
            var rest = path[($"/v2/{changePrefix}/".Length)..];
            var slash = rest.IndexOf('/');
            if (slash < 0 || slash == rest.Length - 1)
            {
                var id = slash < 0 ? rest : rest[..slash];
                if (id.Length > 0) return new RouteMatch(RouteKind.VersionCheck, "", "") { Change = id };
            }
        }
        var route = Parse(path);
        if (route is null || changePrefix is not { Length: > 0 } || !route.Name.StartsWith(changePrefix + "/", StringComparison.Ordinal)) return route;
        var inner = route.Name[(changePrefix.Length + 1)..];
        var separator = inner.IndexOf('/');
        if (separator <= 0 || separator == inner.Length - 1) return route; // "changes/<id>" alone names no repository
        return route with { Change = inner[..separator], RepositoryPart = inner[(separator + 1)..] };
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
