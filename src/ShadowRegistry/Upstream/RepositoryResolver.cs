using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Maps the repository name of a request to its local repository and its upstream. All the forms clients use
/// reach the same local repository "&lt;upstream&gt;/&lt;path&gt;":
/// containerd's mirror form "/v2/org/app?ns=quay.io", the path-prefix form "/v2/quay.io/org/app", and a plain
/// mirror "/v2/org/app" (the default upstream). Docker Hub's short names get their "library/" prefix.
/// </summary>
public sealed class RepositoryResolver
{
    private readonly IReadOnlyDictionary<string, UpstreamRegistry> upstreams;
    private readonly UpstreamRegistry? defaultUpstream;

    public RepositoryResolver(IOptions<ShadowOptions> options)
    {
        var registries = new Dictionary<string, UpstreamRegistry>(StringComparer.Ordinal);
        foreach (var (name, upstream) in options.Value.Upstreams)
        {
            if (!RepositoryName.TryParse(name, out _) || name.Contains('/'))
                throw new OptionsValidationException(ShadowOptions.Section, typeof(ShadowOptions), [$"upstream name '{name}' must be one repository name component, e.g. docker.io"]);
            if (!Uri.TryCreate(upstream.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new OptionsValidationException(ShadowOptions.Section, typeof(ShadowOptions), [$"upstream '{name}' needs an http(s) Url, got '{upstream.Url}'"]);
            var isDockerHub = name == "docker.io" || uri.Host.EndsWith("docker.io", StringComparison.OrdinalIgnoreCase);
            registries[name] = new UpstreamRegistry(name, new Uri(uri.GetLeftPart(UriPartial.Authority)), upstream.Username, upstream.Password,
                upstream.Default, upstream.OfficialImagesPrefix ?? isDockerHub);
        }
        var defaults = registries.Values.Where(u => u.IsDefault).ToList();
        if (defaults.Count > 1)
            throw new OptionsValidationException(ShadowOptions.Section, typeof(ShadowOptions), ["at most one upstream may be the default"]);
        upstreams = registries;
        defaultUpstream = defaults.SingleOrDefault();
    }

    /// <param name="name">The repository name as the client wrote it, already valid per the OCI grammar.</param>
    /// <param name="namespaceHint">containerd's ns query parameter, if any.</param>
    public RepositoryTarget Resolve(RepositoryName name, string? namespaceHint)
    {
        UpstreamRegistry? upstream;
        string path;
        var hint = string.IsNullOrEmpty(namespaceHint) ? null : namespaceHint;
        if (hint is not null)
        {
            if (!upstreams.TryGetValue(hint, out upstream))
            {
                // An ns we do not know: keep it apart locally, with nothing to fall through to.
                return new RepositoryTarget(Local($"{hint}/{name.Value}"), null, name, hint);
            }
            path = name.Value;
        }
        else
        {
            var slash = name.Value.IndexOf('/');
            if (slash > 0 && upstreams.TryGetValue(name.Value[..slash], out upstream)) path = name.Value[(slash + 1)..];
            else if (defaultUpstream is not null) (upstream, path) = (defaultUpstream, name.Value);
            else return new RepositoryTarget(name, null, name, null);
        }
        if (upstream.OfficialImagesPrefix && !path.Contains('/')) path = $"library/{path}";
        return new RepositoryTarget(Local($"{upstream.Name}/{path}"), new UpstreamRepository(upstream, path), name, hint);
    }

    private static RepositoryName Local(string value) =>
        RepositoryName.TryParse(value, out var local) ? local : throw new NameInvalidException(value);
}
