using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Ui;

/// <summary>
/// The operator page's login session with authentication on: after a login with a configured user's name and
/// password, a cookie holding the user's name, encrypted and authenticated with data protection and valid for
/// <see cref="UiOptions.SessionLifetime"/>. HttpOnly, SameSite=Strict, Secure on TLS. Each request looks the user up
/// again, so a role or repository change in the configuration applies at once after a restart.
/// </summary>
public sealed class UiSession(IDataProtectionProvider protection, CredentialVerifier users, IOptions<UiOptions> options, TimeProvider time)
{
    public const string CookieName = "ShadowRegistry.Ui.Session";

    private readonly ITimeLimitedDataProtector protector =
        protection.CreateProtector("ShadowRegistry.Ui.Session.v1").ToTimeLimitedDataProtector();

    /// <summary>The user the request's session cookie names, or null (none, expired, forged, or no longer configured).</summary>
    public RegistryUser? Current(HttpContext context)
    {
        if (!context.Request.Cookies.TryGetValue(CookieName, out var cookie) || string.IsNullOrEmpty(cookie)) return null;
        try
        {
            var name = protector.Unprotect(cookie, out var expires);
            return expires > time.GetUtcNow() ? users.Find(name) : null;
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    public void SignIn(HttpContext context, RegistryUser user)
    {
        var lifetime = options.Value.SessionLifetime;
        var value = protector.Protect(user.Name, time.GetUtcNow() + lifetime);
        context.Response.Cookies.Append(CookieName, value, Cookie(context, lifetime));
    }

    public void SignOut(HttpContext context) => context.Response.Cookies.Delete(CookieName, Cookie(context, null));

    /// <summary>What antiforgery tokens are bound to: the logged-in user, so a token of one session is no good in another.</summary>
    public static ClaimsPrincipal Principal(RegistryUser user) =>
        new(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, user.Name), new Claim(ClaimTypes.Name, user.Name)], "ShadowRegistry.Ui"));

    private CookieOptions Cookie(HttpContext context, TimeSpan? lifetime) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = context.Request.IsHttps,
        Path = options.Value.Path,
        MaxAge = lifetime,
        IsEssential = true,
    };
}
