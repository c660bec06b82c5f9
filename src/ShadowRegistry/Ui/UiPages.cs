using System.Globalization;
using System.Reflection;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;
using ShadowRegistry.Changes;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Ui;

/// <summary>
/// The operator page (README "Operator page"): server-rendered HTML, one small stylesheet and one small script, all
/// served from this assembly. Pages work without the script (it only adds live countdowns and copy buttons).
/// With authentication on, every page needs a login (<see cref="UiSession"/>); users with the write role may act
/// (promote, delete) on the changes their repositories cover, others only see. Every form carries an antiforgery
/// token and every action checks it. A strict Content-Security-Policy allows nothing but this page's own files.
/// </summary>
public sealed partial class UiPages(
    UiData data,
    UiSession session,
    StorageUsage usage,
    MetricsHistory history,
    IAntiforgery antiforgery,
    ChangeService changes,
    IOptions<UiOptions> options,
    IOptions<AuthOptions> authOptions,
    IOptions<ChangeOptions> changeOptions,
    IOptions<ShadowOptions> shadowOptions,
    CredentialVerifier credentials,
    TimeProvider time,
    ILogger<UiPages> logger)
{
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; " +
        "frame-ancestors 'none'; base-uri 'none'";

    private string Base => options.Value.Path;

    private bool AuthOn => authOptions.Value.IsEnabled;

    /// <summary>Who is asking: with authentication off, anyone reaching the port may see and act (as on the API).</summary>
    private sealed record Viewer(RegistryUser? User, bool AuthOn)
    {
        public bool Sees(string repository) => !AuthOn || (User is { } user && user.Covers(repository));

        public bool ActsOn(string change, string prefix) =>
            !AuthOn || (User is { CanWrite: true, IsChangeCredential: false } user && user.Covers($"{prefix}/{change}/x"));
    }

    public async Task HandleAsync(HttpContext context)
    {
        var response = context.Response;
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "same-origin";
        response.Headers.XFrameOptions = "DENY";
        var path = context.Request.Path.Value ?? "";
        var rest = path.Length > Base.Length ? path[Base.Length..] : "";
        if (rest == "")
        {
            response.Redirect(Base + "/" + context.Request.QueryString);
            return;
        }
        if (rest.StartsWith("/assets/", StringComparison.Ordinal))
        {
            await AssetAsync(context, rest["/assets/".Length..]);
            return;
        }
        // What antiforgery sets on pages with a form anyway (it logs a warning when it has to replace another value).
        response.Headers.CacheControl = "no-cache, no-store";
        response.Headers.Pragma = "no-cache";
        var post = HttpMethods.IsPost(context.Request.Method);
        if (!post && !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            response.Headers.Allow = "GET, HEAD, POST";
            await PageAsync(context, 405, "Method not allowed", null, h => h.Add($"<p>This page answers GET and POST only.</p>"));
            return;
        }
        try
        {
            if (post && !await ValidFormAsync(context)) return;
            if (rest == "/login")
            {
                await (post ? LoginAsync(context) : LoginPageAsync(context, null, 200));
                return;
            }
            var viewer = new Viewer(AuthOn ? session.Current(context) : null, AuthOn);
            if (AuthOn && viewer.User is null)
            {
                if (post) await PageAsync(context, 403, "Logged out", null, h => h.Add($"<p>Your session ended. <a href=\"{Base}/login\">Log in</a> again.</p>"));
                else response.Redirect($"{Base}/login?return={Uri.EscapeDataString(path + context.Request.QueryString)}");
                return;
            }
            if (viewer.User is { } signedIn) context.User = UiSession.Principal(signedIn);
            await RouteAsync(context, viewer, rest, post);
        }
        catch (RegistryException e) when (!response.HasStarted)
        {
            var status = e switch
            {
                ChangeUnknownException or ManifestUnknownException or NameUnknownException => 404,
                PromotionConflictException => 409,
                UpstreamUnavailableException => 503,
                _ => 400,
            };
            await PageAsync(context, status, status == 404 ? "Not found" : "Refused", null, h => h.Add($"<p class=\"error\">{e.Message}</p>"));
        }
        catch (Api.RegistryError e) when (!response.HasStarted)
        {
            await PageAsync(context, e.Status, "Refused", null, h => h.Add($"<p class=\"error\">{e.Message}</p>"));
        }
    }

    private Task RouteAsync(HttpContext context, Viewer viewer, string rest, bool post)
    {
        if (rest == "/" && !post) return QueueAsync(context, viewer);
        if (rest == "/repositories" && !post) return RepositoriesAsync(context, viewer);
        if (rest == "/repository" && !post) return RepositoryAsync(context, viewer);
        if (rest == "/manifest" && !post) return ManifestAsync(context, viewer);
        if (rest == "/health" && !post) return HealthAsync(context, viewer);
        if (rest == "/logout" && post)
        {
            session.SignOut(context);
            context.Response.Redirect($"{Base}/login");
            return Task.CompletedTask;
        }
        if (rest.StartsWith("/changes/", StringComparison.Ordinal))
        {
            var parts = rest["/changes/".Length..].Split('/');
            if (ChangeId.TryParse(parts[0], out var id))
            {
                if (parts.Length == 1 && !post) return ChangeAsync(context, viewer, id, null);
                if (parts.Length == 2 && post && parts[1] == "promote") return PromoteAsync(context, viewer, id);
                if (parts.Length == 2 && post && parts[1] == "delete") return DeleteAsync(context, viewer, id);
            }
        }
        return PageAsync(context, 404, "Not found", viewer, h => h.Add($"<p>There is no such page. <a href=\"{Base}/\">Back to the queue</a>.</p>"));
    }

    /// <summary>Every POST must carry the antiforgery token of a page this site served (cookie and form field).</summary>
    private async Task<bool> ValidFormAsync(HttpContext context)
    {
        if (AuthOn && session.Current(context) is { } user) context.User = UiSession.Principal(user);
        try
        {
            await antiforgery.ValidateRequestAsync(context);
            return true;
        }
        catch (AntiforgeryValidationException e)
        {
            logger.LogWarning("Refused a form post to {Path} without a valid antiforgery token: {Reason}", context.Request.Path, e.Message);
            await PageAsync(context, 400, "Form expired", null,
                h => h.Add($"<p>The form was not sent by this page (or it is too old). Reload the page and try again.</p>"));
            return false;
        }
    }

    // --- Login ---

    private async Task LoginPageAsync(HttpContext context, string? problem, int status)
    {
        if (!AuthOn)
        {
            context.Response.Redirect(Base + "/");
            return;
        }
        var back = ReturnPath(context.Request.Query["return"].ToString());
        var token = Token(context);
        await PageAsync(context, status, "Log in", null, h =>
        {
            if (problem is not null) h.Add($"<p class=\"error\" role=\"alert\">{problem}</p>");
            h.Add($"""
                <form class="login" method="post" action="{Base}/login?return={Uri.EscapeDataString(back)}">
                <input type="hidden" name="_csrf" value="{token}">
                <p><label for="username">User name</label><input id="username" name="username" autocomplete="username" required></p>
                <p><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required></p>
                <p><button type="submit">Log in</button></p>
                </form>
                <p class="hint">The registry's users (Auth:Users) log in here with the password they use for the registry.</p>
                """);
        });
    }

    private async Task LoginAsync(HttpContext context)
    {
        if (!AuthOn)
        {
            context.Response.Redirect(Base + "/");
            return;
        }
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var name = form["username"].ToString();
        var password = form["password"].ToString();
        var check = await credentials.VerifyAsync(name, password, context.Connection.RemoteIpAddress, context.RequestAborted);
        if (check.Throttled is { } throttled)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(throttled.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            await LoginPageAsync(context, "Too many failed logins; try again later.", 429);
            return;
        }
        if (check.User is not { IsChangeCredential: false } user)
        {
            await LoginPageAsync(context, "Unknown user name or wrong password.", 401);
            return;
        }
        session.SignIn(context, user);
        logger.LogInformation("{User} logged in to the operator page", user.Name);
        context.Response.Redirect(ReturnPath(context.Request.Query["return"].ToString()));
    }

    /// <summary>Only a path of this page: a login must never send the browser elsewhere.</summary>
    private string ReturnPath(string? value) =>
        value is { Length: > 0 } && (value == Base || value.StartsWith(Base + "/", StringComparison.Ordinal) || value.StartsWith(Base + "?", StringComparison.Ordinal))
        && !value.Contains("//", StringComparison.Ordinal) && !value.Contains('\\')
            ? value
            : Base + "/";

    private string Token(HttpContext context) => antiforgery.GetAndStoreTokens(context).RequestToken ?? "";

    // --- Layout ---

    private async Task PageAsync(HttpContext context, int status, string title, Viewer? viewer, Action<Html> content, string? current = null)
    {
        var html = new Html();
        html.Add($"""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{title} · ShadowRegistry</title>
            <link rel="stylesheet" href="{Base}/assets/site.css">
            <script src="{Base}/assets/ui.js" defer></script>
            </head>
            <body>
            <header class="top">
            <a class="brand" href="{Base}/">ShadowRegistry</a>
            <nav aria-label="Main">
            """);
        foreach (var (href, label) in new[] { ("/", "Queue"), ("/repositories", "Repositories"), ("/health", "Health") })
            html.Add($"<a href=\"{Base}{href}\"{(current == label ? new Markup(" aria-current=\"page\"") : new Markup(""))}>{label}</a>");
        html.Add($"</nav>");
        if (viewer?.User is { } user)
        {
            html.Add($"""
                <form class="user" method="post" action="{Base}/logout"><input type="hidden" name="_csrf" value="{Token(context)}">
                <span>{user.Name} ({user.Role})</span> <button type="submit">Log out</button></form>
                """);
        }
        html.Add($"</header>\n<main id=\"main\">\n<h1>{title}</h1>\n");
        content(html);
        html.Add($"</main>\n</body>\n</html>\n");
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        await context.Response.WriteAsync(html.ToString(), context.RequestAborted);
    }

    private static readonly Assembly Assembly = typeof(UiPages).Assembly;

    private static async Task AssetAsync(HttpContext context, string name)
    {
        var (resource, type) = name switch
        {
            "site.css" => ("ShadowRegistry.Ui.Assets.site.css", "text/css; charset=utf-8"),
            "ui.js" => ("ShadowRegistry.Ui.Assets.ui.js", "text/javascript; charset=utf-8"),
            _ => (null, null),
        };
        await using var stream = resource is null ? null : Assembly.GetManifestResourceStream(resource);
        if (stream is null)
        {
            context.Response.StatusCode = 404;
            return;
        }
        context.Response.ContentType = type;
        context.Response.ContentLength = stream.Length;
        context.Response.Headers.CacheControl = "public, max-age=3600";
        await stream.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    // --- Formatting ---

    private static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.#} KiB"),
        < 1024L * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):0.#} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):0.##} GiB"),
    };

    /// <summary>"3d 4h", "5h 03m", "12m 09s", "40s".</summary>
    public static string Span(TimeSpan span)
    {
        if (span < TimeSpan.Zero) span = TimeSpan.Zero;
        return span.TotalDays >= 1 ? $"{(int)span.TotalDays}d {span.Hours}h"
            : span.TotalHours >= 1 ? $"{(int)span.TotalHours}h {span.Minutes:00}m"
            : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m {span.Seconds:00}s"
            : $"{(int)span.TotalSeconds}s";
    }

    private static string Iso(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Short(string? digest) => digest is null ? "none" : digest.Length > 19 ? digest[..19] + "…" : digest;

    private Markup Time(DateTimeOffset at) => Html.Fragment(h => h.Add($"<time datetime=\"{Iso(at)}\">{Iso(at)}</time>"));

    private Markup Expiry(DateTimeOffset expires) =>
        Html.Fragment(h => h.Add($"<time class=\"expires\" datetime=\"{Iso(expires)}\" data-expires=\"{Iso(expires)}\">in {Span(expires - time.GetUtcNow())}</time>"));

    private string Q(string value) => Uri.EscapeDataString(value);

    private static int PageNumber(HttpContext context) =>
        int.TryParse(context.Request.Query["page"], NumberStyles.None, CultureInfo.InvariantCulture, out var page) && page is > 0 and < 1_000_000 ? page : 1;
}
