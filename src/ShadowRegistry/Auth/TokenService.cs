using System.IdentityModel.Tokens.Jwt;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace ShadowRegistry.Auth;

/// <summary>A signed token and what the token endpoint reports about it.</summary>
public sealed record IssuedToken(string Token, DateTimeOffset IssuedAt, DateTimeOffset ExpiresAt)
{
    public int ExpiresInSeconds => (int)Math.Round((ExpiresAt - IssuedAt).TotalSeconds);
}

/// <summary>A token that passed validation: who it was issued to (null when anonymous) and what it grants.</summary>
public sealed record ValidatedToken(string? Subject, IReadOnlyList<AccessScope> Access, DateTimeOffset ExpiresAt)
{
    public bool Allows(string type, string name, string action) => Access.Any(scope => scope.Allows(type, name, action));
}

/// <summary>Why a token was refused, in words fit for a log line and a client (never the token itself).</summary>
public sealed record TokenRejection(string Reason);

/// <summary>
/// Issues and validates the registry's bearer tokens: JWTs in the shape of the Docker token specification
/// (iss, sub, aud = service, exp, nbf, iat, jti, and an <c>access</c> claim listing <c>{type, name, actions}</c>).
/// Issuing depends only on configuration, never on storage, so it cannot race with a push creating a repository.
/// </summary>
public sealed class TokenService
{
    private readonly AuthOptions options;
    private readonly TokenSigningKey signingKey;
    private readonly TimeProvider time;
    private readonly JwtSecurityTokenHandler handler = new() { MapInboundClaims = false, SetDefaultTimesOnTokenCreation = false };
    private readonly TokenValidationParameters parameters;

    public TokenService(IOptions<AuthOptions> options, TokenSigningKey signingKey, TimeProvider time)
    {
        this.options = options.Value;
        this.signingKey = signingKey;
        this.time = time;
        parameters = new TokenValidationParameters
        {
            ValidIssuer = this.options.Issuer,
            ValidateIssuer = true,
            ValidAudience = this.options.Service,
            ValidateAudience = true,
            RequireAudience = true,
            IssuerSigningKey = signingKey.Key,
            ValidAlgorithms = [signingKey.Algorithm],
            RequireSignedTokens = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            ClockSkew = this.options.ClockSkew,
            // The clock is injected (tests move it); the skew applies on both ends.
            LifetimeValidator = ValidateLifetime,
            // Validation failures are reported by the caller; the library must not log token contents.
            LogValidationExceptions = false,
        };
    }

    private bool ValidateLifetime(DateTime? notBefore, DateTime? expires, SecurityToken token, TokenValidationParameters validation)
    {
        var now = time.GetUtcNow().UtcDateTime;
        if (expires is null) throw new SecurityTokenNoExpirationException("token has no expiry");
        if (notBefore > now + validation.ClockSkew) throw new SecurityTokenNotYetValidException("token not yet valid") { NotBefore = notBefore.Value };
        if (expires.Value < now - validation.ClockSkew) throw new SecurityTokenExpiredException("token expired") { Expires = expires.Value };
        return true;
    }

    public IssuedToken Issue(string? subject, IReadOnlyList<AccessScope> access)
    {
        var now = time.GetUtcNow();
        // JWT times are whole seconds: truncate so issued_at and the iat claim agree.
        now = DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds());
        var expires = now + options.TokenLifetime;
        var payload = new JwtPayload
        {
            [JwtRegisteredClaimNames.Iss] = options.Issuer,
            [JwtRegisteredClaimNames.Aud] = options.Service,
            [JwtRegisteredClaimNames.Iat] = now.ToUnixTimeSeconds(),
            [JwtRegisteredClaimNames.Nbf] = now.ToUnixTimeSeconds(),
            [JwtRegisteredClaimNames.Exp] = expires.ToUnixTimeSeconds(),
            [JwtRegisteredClaimNames.Jti] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
            [JwtRegisteredClaimNames.Sub] = subject ?? "",
            ["access"] = JsonSerializer.SerializeToElement(access.Select(scope => new AccessEntry(scope.Type, scope.Name, scope.Actions.ToArray())).ToArray(), AuthJson.Relaxed.AccessEntryArray),
        };
        var token = new JwtSecurityToken(new JwtHeader(signingKey.Credentials), payload);
        return new IssuedToken(handler.WriteToken(token), now, expires);
    }

    /// <summary>Checks signature, algorithm, issuer, audience and lifetime (with the configured skew), then reads the access claim.</summary>
    public async Task<(ValidatedToken? Token, TokenRejection? Rejection)> ValidateAsync(string token)
    {
        if (token.Length > 16 * 1024) return (null, new TokenRejection("token is too large"));
        TokenValidationResult result;
        try
        {
            result = await handler.ValidateTokenAsync(token, parameters);
        }
        catch (Exception e) when (e is ArgumentException or SecurityTokenException or JsonException or FormatException)
        {
            return (null, new TokenRejection(Describe(e)));
        }
        if (!result.IsValid || result.SecurityToken is not JwtSecurityToken jwt)
            return (null, new TokenRejection(Describe(result.Exception)));
        try
        {
            var access = ReadAccess(jwt.RawPayload);
            var subject = jwt.Subject;
            return (new ValidatedToken(string.IsNullOrEmpty(subject) ? null : subject, access, new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero)), null);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            return (null, new TokenRejection("malformed access claim"));
        }
    }

    private static IReadOnlyList<AccessScope> ReadAccess(string rawPayload)
    {
        using var document = JsonDocument.Parse(Base64UrlEncoder.DecodeBytes(rawPayload));
        if (!document.RootElement.TryGetProperty("access", out var access) || access.ValueKind == JsonValueKind.Null) return [];
        var entries = access.Deserialize(AuthJson.Relaxed.AccessEntryArray) ?? [];
        return entries
            .Where(entry => entry is { Type.Length: > 0, Name.Length: > 0 })
            .Select(entry => new AccessScope(entry.Type, entry.Name, entry.Actions ?? []))
            .ToArray();
    }

    /// <summary>A short reason without token contents (the library's messages can embed claims).</summary>
    private static string Describe(Exception? e) => e switch
    {
        SecurityTokenExpiredException => "token expired",
        SecurityTokenNotYetValidException => "token not yet valid",
        SecurityTokenNoExpirationException => "token has no expiry",
        SecurityTokenInvalidAudienceException => "token was issued for another service",
        SecurityTokenInvalidIssuerException => "token was issued by another issuer",
        SecurityTokenInvalidAlgorithmException => "token signed with an unexpected algorithm",
        SecurityTokenSignatureKeyNotFoundException => "token signature does not match",
        SecurityTokenInvalidSignatureException => "token signature does not match",
        SecurityTokenMalformedException or ArgumentException or FormatException or JsonException => "token is malformed",
        null => "token is invalid",
        _ => $"token is invalid ({e.GetType().Name})",
    };

    internal sealed record AccessEntry(
        [property: JsonPropertyName("type")] string Type,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("actions")] string[]? Actions);
}

/// <summary>The token service's JSON, by generated code rather than reflection (the Native AOT build has none).</summary>
[JsonSerializable(typeof(TokenService.AccessEntry[]))]
[JsonSerializable(typeof(TokenEndpoint.TokenResponse))]
internal sealed partial class AuthJson : JsonSerializerContext
{
    /// <summary>The access claim, written with the relaxed encoder it has always had.</summary>
    public static readonly AuthJson Relaxed = new(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
