namespace ShadowRegistry.Auth;

/// <summary>
/// Settings under the "Auth" configuration section. Authentication is off unless <see cref="Enabled"/> is true, or
/// it is left unset and at least one user is configured.
/// </summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>True turns token authentication on, false keeps it off; unset means "on when users are configured".</summary>
    public bool? Enabled { get; set; }

    /// <summary>
    /// Anyone may pull (and list the catalog) without credentials. False is the restricted mode: every request,
    /// reads included, needs a token obtained with a user's credentials.
    /// </summary>
    public bool AnonymousPull { get; set; } = true;

    /// <summary>
    /// The token endpoint URL put in challenges. Unset: derived from each request (scheme and Host header) as
    /// <c>{scheme}://{host}/auth/token</c>; set it when a proxy in front rewrites either.
    /// </summary>
    public string? Realm { get; set; }

    /// <summary>The service name in challenges; tokens are issued with it as their audience.</summary>
    public string Service { get; set; } = "shadow-registry";

    /// <summary>The tokens' issuer (iss claim), checked on validation.</summary>
    public string Issuer { get; set; } = "shadow-registry";

    /// <summary>How long an issued token is valid. Clients ask for a new one when it runs out.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Tolerated difference between clocks when checking a token's lifetime.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a successful password check is remembered (in memory, keyed by an HMAC with a per-process key), so a burst of logins costs one hash computation. Zero disables.</summary>
    public TimeSpan CredentialCacheLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How many password hashes may be computed at once. Each takes a core for a good fraction of a second, so more
    /// attempts than this wait their turn instead of taking every core from the rest of the registry.
    /// </summary>
    public int MaxConcurrentPasswordChecks { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// Failed logins allowed per user name, and separately per client address, within <see cref="FailedLoginWindow"/>;
    /// further attempts are answered 429 without checking the password. Zero turns this off.
    /// </summary>
    public int FailedLoginLimit { get; set; } = 10;

    /// <summary>The window <see cref="FailedLoginLimit"/> counts in; a throttled user or address may try again when it ends.</summary>
    public TimeSpan FailedLoginWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The most a token request's POST body may hold; a larger one is answered 413 without being read.</summary>
    public int MaxTokenRequestBytes { get; set; } = 64 * 1024;

    public SigningKeyOptions SigningKey { get; set; } = new();

    public List<AuthUser> Users { get; set; } = [];

    public bool IsEnabled => Enabled ?? Users.Count > 0;
}

/// <summary>
/// The key tokens are signed and checked with: an HMAC <see cref="Secret"/> (HS256) or a PEM private key file
/// (<see cref="KeyPath"/>: RSA gives RS256, EC P-256/P-384/P-521 give ES256/ES384/ES512). With neither, a random
/// HMAC key is made at startup: tokens then do not survive a restart and instances cannot share them.
/// </summary>
public sealed class SigningKeyOptions
{
    /// <summary>HMAC secret, at least 32 bytes of UTF-8 (e.g. <c>openssl rand -base64 48</c>).</summary>
    public string? Secret { get; set; }

    /// <summary>PEM file holding an unencrypted RSA or EC private key (PKCS#8 "PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY").</summary>
    public string? KeyPath { get; set; }
}

public sealed class AuthUser
{
    public string Name { get; set; } = "";

    /// <summary>The password's hash as printed by <c>ShadowRegistry hash-password</c>; plain passwords are refused.</summary>
    public string PasswordHash { get; set; } = "";

    /// <summary><c>read</c> (pull) or <c>write</c> (pull, push and delete).</summary>
    public string Role { get; set; } = AuthRoles.Read;

    /// <summary>
    /// Repository name patterns the role applies to; empty means every repository. <c>*</c> matches within one
    /// path component, <c>**</c> across components: <c>team-a/**</c>, <c>base/*</c>, <c>tools</c>.
    /// </summary>
    public List<string> Repositories { get; set; } = [];
}

public static class AuthRoles
{
    public const string Read = "read";
    public const string Write = "write";
}
