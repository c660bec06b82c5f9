using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Answers upstream authentication challenges the way Docker clients do: for "Bearer" it asks the realm for a
/// token for (service, scope), anonymously or with the upstream's configured credentials, and caches it per
/// (upstream, scope) until shortly before it expires; for "Basic" it uses the credentials directly.
/// Concurrent requests that need the same token share one token request.
/// </summary>
public sealed partial class UpstreamTokenProvider(IHttpClientFactory httpClientFactory, TimeProvider time, RegistryMetrics metrics, ILogger<UpstreamTokenProvider> logger)
{
    public const string TokenClient = "upstream-token";

    private sealed record CachedCredential(AuthenticationHeaderValue Header, DateTimeOffset ExpiresAt);

    private readonly ConcurrentDictionary<(string Upstream, string Scope), CachedCredential> cache = new();
    private readonly SingleFlight<(string Upstream, string Scope), CachedCredential?> inFlight = new(() => metrics.UpstreamCollapsed("token"));

    /// <summary>The credential to send proactively, when one is cached and still valid.</summary>
    public AuthenticationHeaderValue? GetCached(UpstreamRegistry upstream, string scope) =>
        cache.TryGetValue((upstream.Name, scope), out var cached) && cached.ExpiresAt > time.GetUtcNow() ? cached.Header : null;

    public void Invalidate(UpstreamRegistry upstream, string scope) => cache.TryRemove((upstream.Name, scope), out _);

    /// <summary>Obtains a credential answering the challenge of a 401, or null when the challenge cannot be answered.</summary>
    public async Task<AuthenticationHeaderValue?> AuthenticateAsync(UpstreamRegistry upstream, string scope, HttpHeaders responseHeaders, CancellationToken cancellationToken)
    {
        Invalidate(upstream, scope);
        var challenge = responseHeaders.TryGetValues("WWW-Authenticate", out var values) ? values.FirstOrDefault() : null;
        if (challenge is null) return null;
        var key = (upstream.Name, scope);
        // The token client's own timeout bounds the shared request.
        var credential = await inFlight.RunAsync(key, () => FetchAsync(upstream, scope, challenge, CancellationToken.None), cancellationToken);
        if (credential is not null) cache[key] = credential;
        return credential?.Header;
    }

    private async Task<CachedCredential?> FetchAsync(UpstreamRegistry upstream, string scope, string challenge, CancellationToken cancellationToken)
    {
        var scheme = challenge.Split(' ', 2)[0];
        if (scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            if (!upstream.HasCredentials) return null;
            return new CachedCredential(BasicHeader(upstream), DateTimeOffset.MaxValue);
        }
        if (!scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase)) return null;

        var parameters = ChallengeParameter().Matches(challenge).ToDictionary(m => m.Groups["key"].Value.ToLowerInvariant(), m => m.Groups["value"].Value);
        if (!parameters.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri)) return null;
        var query = new List<string>();
        if (parameters.TryGetValue("service", out var service)) query.Add($"service={Uri.EscapeDataString(service)}");
        query.Add($"scope={Uri.EscapeDataString(scope)}");
        var tokenUri = new UriBuilder(realmUri) { Query = string.Join('&', query) }.Uri;

        using var request = new HttpRequestMessage(HttpMethod.Get, tokenUri);
        if (upstream.HasCredentials) request.Headers.Authorization = BasicHeader(upstream);
        var client = httpClientFactory.CreateClient(TokenClient);
        using var response = await client.SendAsync(request, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            logger.LogWarning("Token request to {Realm} for {Upstream} {Scope} failed with {Status}", realmUri.GetLeftPart(UriPartial.Path), upstream.Name, scope, (int)response.StatusCode);
            return null;
        }
        using var body = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancellationToken));
        var root = body.RootElement;
        var token = root.TryGetProperty("token", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
            : root.TryGetProperty("access_token", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
        if (string.IsNullOrEmpty(token)) return null;
        // The token spec's default lifetime is 60 s; renew a little early so a request never carries a stale one.
        var lifetime = root.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var seconds) && seconds > 0 ? seconds : 60;
        var expiresAt = time.GetUtcNow().AddSeconds(Math.Max(1, lifetime - Math.Min(30, lifetime / 5)));
        logger.LogDebug("Obtained upstream token for {Upstream} {Scope}, valid {Lifetime}s", upstream.Name, scope, lifetime);
        return new CachedCredential(new AuthenticationHeaderValue("Bearer", token), expiresAt);
    }

    private static AuthenticationHeaderValue BasicHeader(UpstreamRegistry upstream) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{upstream.Username}:{upstream.Password}")));

    [GeneratedRegex("(?<key>[A-Za-z]+)=\"(?<value>[^\"]*)\"", RegexOptions.CultureInvariant)]
    private static partial Regex ChallengeParameter();
}
