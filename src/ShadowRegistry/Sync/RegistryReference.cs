using ShadowRegistry.Domain;

namespace ShadowRegistry.Sync;

/// <summary>
/// One side of a sync or check: <c>[http://|https://]host[:port]/&lt;repository&gt;[:&lt;tag&gt;]</c> (no scheme means
/// https), or <c>.../&lt;prefix&gt;/*</c> for every repository under a prefix.
/// </summary>
public sealed record RegistryReference(Uri Registry, string Repository, string? Tag, bool IsPrefix)
{
    public override string ToString() =>
        $"{Registry.GetLeftPart(UriPartial.Authority)}/{Repository}{(IsPrefix ? "/*" : "")}{(Tag is null ? "" : ":" + Tag)}";

    public static RegistryReference Parse(string text)
    {
        var scheme = "https";
        var rest = text;
        if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) (scheme, rest) = ("http", text[7..]);
        else if (text.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) rest = text[8..];
        var slash = rest.IndexOf('/');
        if (slash <= 0 || slash == rest.Length - 1) throw new ArgumentException($"'{text}' is not host[:port]/repository[:tag]");
        if (!Uri.TryCreate($"{scheme}://{rest[..slash]}/", UriKind.Absolute, out var registry) || registry.PathAndQuery != "/")
            throw new ArgumentException($"'{text}' has no valid host");
        var path = rest[(slash + 1)..];
        if (path == "*" || path.EndsWith("/*", StringComparison.Ordinal))
        {
            var prefix = path == "*" ? "" : path[..^2];
            if (prefix.Length > 0 && !RepositoryName.TryParse(prefix, out _)) throw new ArgumentException($"'{prefix}' is not a repository prefix");
            return new RegistryReference(registry, prefix, null, IsPrefix: true);
        }
        string? tag = null;
        var colon = path.LastIndexOf(':');
        if (colon > 0 && !path[colon..].Contains('/'))
        {
            tag = path[(colon + 1)..];
            path = path[..colon];
            if (!Domain.Tag.IsValid(tag)) throw new ArgumentException($"'{tag}' is not a valid tag");
        }
        if (!RepositoryName.TryParse(path, out _)) throw new ArgumentException($"'{path}' is not a valid repository name");
        return new RegistryReference(registry, path, tag, IsPrefix: false);
    }

    /// <summary>Same registry (scheme, host and port): blobs can be mounted instead of copied.</summary>
    public bool SameRegistryAs(RegistryReference other) =>
        Uri.Compare(Registry, other.Registry, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
}
