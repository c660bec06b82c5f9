using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Serilog;
using ShadowRegistry.Api;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Auth;

/// <summary>
/// The built-in token server at <see cref="Challenge.TokenPath"/>:
/// <c>GET ?service=&amp;scope=</c> with optional Basic credentials (Docker token specification), and the OAuth2
/// <c>POST</c> form with <c>grant_type=password</c> that containerd-based clients try first. Answers
/// <c>{"token","access_token","expires_in","issued_at"}</c> granting the part of the requested scopes the caller is
/// allowed. Refresh tokens are not issued; clients fall back to the password grant or to GET.
/// </summary>
public sealed class TokenEndpoint(
    IOptions<AuthOptions> options,
    CredentialVerifier verifier,
    AccessPolicy policy,
    TokenService tokens,
    IDiagnosticContext diagnostics,
    RegistryMetrics metrics,
    ILogger<TokenEndpoint> logger)
{
    /// <summary>The most scopes one request may ask for; clients ask for a handful (a push with mounts: one per source).</summary>
    public const int MaxScopes = 100;

    /// <summary>The longest single form value (a password, a space-separated scope list) and query string.</summary>
    public const int MaxValueLength = 16 * 1024;

    /// <summary>The most form fields; the OAuth2 form has about seven, some clients repeat <c>scope</c>.</summary>
    public const int MaxFormFields = MaxScopes + 28;

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var (service, scopes, credentials) = request.Method == HttpMethods.Post ? await ReadFormAsync(context) : ReadQuery(request);

        if (!string.IsNullOrEmpty(service) && service != options.Value.Service)
            throw new RegistryError(400, "UNSUPPORTED", $"unknown service '{service}'; this registry's service is '{options.Value.Service}'");

        var scopeCount = scopes.Sum(value => value?.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length ?? 0);
        if (scopeCount > MaxScopes)
            throw new RegistryError(400, "UNSUPPORTED", $"a token request may ask for at most {MaxScopes} scopes, not {scopeCount}");
        var requested = AccessScope.ParseAll(scopes);
        RegistryUser? user = null;
        if (credentials is { } given)
        {
            var check = await verifier.VerifyAsync(given.User, given.Password, context.Connection.RemoteIpAddress, context.RequestAborted);
            if (check.Throttled is { } throttled)
            {
                diagnostics.Set("User", given.User);
                logger.LogDebug("Token refused for {User}: too many failed logins {Scope} (requested {Scopes})",
                    given.User, throttled.Scope == LoginThrottleScope.User ? "for the user" : "from the address", Describe(requested));
                metrics.AuthFailure("throttled");
                throw TooManyFailures(throttled);
            }
            user = check.User;
            if (user is null)
            {
                diagnostics.Set("User", given.User);
                logger.LogWarning("Token refused for {User}: unknown user or wrong password (requested {Scopes})", given.User, Describe(requested));
                metrics.AuthFailure("bad_credentials");
                throw Unauthorized(request, "invalid username or password");
            }
        }
        else if (!policy.AnonymousPull)
        {
            logger.LogInformation("Token refused to an anonymous client: this registry requires authentication (requested {Scopes})", Describe(requested));
            metrics.AuthFailure("anonymous_refused");
            throw Unauthorized(request, "authentication required");
        }

        var granted = policy.Grant(user, requested);
        var issued = tokens.Issue(user?.Name, granted);
        var who = user?.Name ?? "(anonymous)";
        diagnostics.Set("User", who);
        logger.LogInformation("Issued token to {User} granting {Granted} (requested {Scopes}, expires {Expires:O})",
            who, Describe(granted), Describe(requested), issued.ExpiresAt);

        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers.Pragma = "no-cache";
        await context.Response.WriteAsJsonAsync(new TokenResponse(
            issued.Token,
            issued.Token,
            issued.ExpiresInSeconds,
            issued.IssuedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)), AuthJson.Default.TokenResponse);
    }

    private RegistryError Unauthorized(HttpRequest request, string message)
    {
        var error = new RegistryError(401, "UNAUTHORIZED", message);
        error.Headers["WWW-Authenticate"] = Challenge.Basic(Challenge.Realm(request, options.Value));
        return error;
    }

    /// <summary>
    /// 429 with Retry-After. Which count ran out is said: it tells nothing about the password, and an operator
    /// reading a client's error needs it.
    /// </summary>
    private static RegistryError TooManyFailures(LoginThrottled throttled)
    {
        var seconds = (long)Math.Ceiling(Math.Max(1, throttled.RetryAfter.TotalSeconds));
        var whose = throttled.Scope == LoginThrottleScope.User ? "for this user" : "from this address";
        var error = new RegistryError(429, "TOOMANYREQUESTS",
            $"too many failed logins {whose}; try again in {seconds} seconds (until then even the right password is refused)");
        error.Headers["Retry-After"] = seconds.ToString(CultureInfo.InvariantCulture);
        return error;
    }

    private static (string? Service, IEnumerable<string?> Scopes, (string User, string Password)? Credentials) ReadQuery(HttpRequest request)
    {
        // Kestrel caps the request line (8 KiB by default), but that is a server-wide setting; this endpoint needs little.
        if (request.QueryString.Value?.Length > MaxValueLength)
            throw new RegistryError(400, "UNSUPPORTED", $"the token request's query string is longer than {MaxValueLength} characters");
        return (request.Query["service"].ToString(), request.Query["scope"].ToArray(), BasicCredentials(request));
    }

    private async Task<(string? Service, IEnumerable<string?> Scopes, (string User, string Password)? Credentials)> ReadFormAsync(HttpContext context)
    {
        var request = context.Request;
        // OAuth2 token requests are URL-encoded forms (RFC 6749); multipart would only add a parser to attack.
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var contentType)
            || !string.Equals(contentType.MediaType.Value, "application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
            throw new RegistryError(400, "UNSUPPORTED", "the token endpoint takes an application/x-www-form-urlencoded body on POST");

        // The registry lifts Kestrel's body limit for blobs; anyone can reach this endpoint, so it sets its own before
        // reading. Kestrel then refuses a larger Content-Length before reading any of it, and stops a chunked body
        // at the limit.
        var limit = options.Value.MaxTokenRequestBytes;
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize) bodySize.MaxRequestBodySize = limit;
        context.Features.Set<IFormFeature>(new FormFeature(request, new FormOptions
        {
            BufferBody = false,
            ValueCountLimit = MaxFormFields,
            KeyLengthLimit = 256,
            ValueLengthLimit = Math.Min(MaxValueLength, limit),
        }));

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(context.RequestAborted);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            logger.LogWarning("Token request body refused: larger than {Limit} bytes (Content-Length {Length})", limit, request.ContentLength?.ToString(CultureInfo.InvariantCulture) ?? "unset");
            throw new RegistryError(413, "SIZE_INVALID", $"the token request body is larger than {limit} bytes");
        }
        catch (InvalidDataException e)
        {
            // The form reader's own limits (value length, field count, key length); its message names the limit.
            logger.LogWarning("Token request form refused: {Reason}", e.Message);
            throw new RegistryError(400, "UNSUPPORTED", $"the token request form is not acceptable: {e.Message}");
        }
        var grantType = form["grant_type"].ToString();
        (string User, string Password)? credentials = grantType switch
        {
            "password" => form["username"].ToString() is { Length: > 0 } name ? (name, form["password"].ToString()) : throw new RegistryError(400, "UNSUPPORTED", "grant_type=password needs a username"),
            "" => BasicCredentials(request),
            _ => throw new RegistryError(400, "UNSUPPORTED", $"grant_type '{grantType}' is not supported; use 'password' (refresh tokens are not issued)"),
        };
        return (form["service"].ToString(), form["scope"].ToArray(), credentials);
    }

    /// <summary>The Basic credentials of the request, null when there are none. Malformed ones count as wrong.</summary>
    private static (string User, string Password)? BasicCredentials(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            var colon = decoded.IndexOf(':');
            return colon < 0 ? (decoded, "") : (decoded[..colon], decoded[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return ("", "");
        }
    }

    private static string Describe(IReadOnlyList<AccessScope> scopes) => scopes.Count == 0 ? "nothing" : string.Join(' ', scopes);

    internal sealed record TokenResponse(
        [property: JsonPropertyName("token")] string Token,
        [property: JsonPropertyName("access_token")] string AccessToken,
        [property: JsonPropertyName("expires_in")] int ExpiresIn,
        [property: JsonPropertyName("issued_at")] string IssuedAt);
}
