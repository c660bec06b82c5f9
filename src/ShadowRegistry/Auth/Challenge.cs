using System.Text;

namespace ShadowRegistry.Auth;

/// <summary>Builds the WWW-Authenticate challenges the registry and the token endpoint answer with.</summary>
public static class Challenge
{
    public const string TokenPath = "/auth/token";

    /// <summary><c>Bearer realm="...",service="..."[,scope="..."][,error="..."]</c></summary>
    public static string Bearer(string realm, string service, string? scope, string? error = null)
    {
        var text = new StringBuilder("Bearer ");
        text.Append($"realm=\"{Quote(realm)}\",service=\"{Quote(service)}\"");
        if (!string.IsNullOrEmpty(scope)) text.Append($",scope=\"{Quote(scope)}\"");
        if (!string.IsNullOrEmpty(error)) text.Append($",error=\"{Quote(error)}\"");
        return text.ToString();
    }

    public static string Basic(string realm) => $"Basic realm=\"{Quote(realm)}\",charset=\"UTF-8\"";

    /// <summary>The token endpoint's URL: configured, or this request's scheme and Host plus <see cref="TokenPath"/>.</summary>
    public static string Realm(HttpRequest request, AuthOptions options) =>
        !string.IsNullOrEmpty(options.Realm) ? options.Realm : $"{request.Scheme}://{request.Host.ToUriComponent()}{request.PathBase.ToUriComponent()}{TokenPath}";

    private static string Quote(string value) => value.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
