using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Api;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Auth;

/// <summary>
/// Guards the /v2 API before dispatch. It learns from <see cref="RouteMatch"/> which repository (as the client
/// wrote it) and which kind of endpoint a request is about, derives the action needed (reads: pull; uploads and
/// manifest PUT: push; DELETE: delete; the catalog: registry:catalog:*), and lets the request through when the bearer
/// token grants it, or when anonymous pull covers it. Otherwise the answer is OCI error JSON with a fresh
/// <c>WWW-Authenticate: Bearer</c> challenge naming the scope to ask for: 401 UNAUTHORIZED when the client is
/// anonymous or its token is invalid, 403 DENIED when an authenticated user lacks the access.
/// <para>
/// Tokens name repositories as clients write them. A request may also carry containerd's <c>ns</c> parameter, which
/// makes it act on another local repository (<c>/v2/app/x?ns=internal</c> is <c>internal/app/x</c>); then access to
/// that repository is needed as well, so <c>ns</c> cannot lead past a user's repository patterns.
/// </para>
/// </summary>
public sealed class RegistryAuthMiddleware(
    RequestDelegate next,
    IOptions<AuthOptions> options,
    AccessPolicy policy,
    TokenService tokens,
    RepositoryResolver resolver,
    IDiagnosticContext diagnostics,
    RegistryMetrics metrics,
    ILogger<RegistryAuthMiddleware> logger)
{
    private const string Anonymous = "(anonymous)";

    public async Task InvokeAsync(HttpContext context)
    {
        var route = RouteMatch.Of(context);
        if (route is null)
        {
            // Not the registry API (the token endpoint, or a path dispatch will answer 404 for).
            await next(context);
            return;
        }

        // Dispatch would refuse an invalid name anyway; refusing it first keeps it out of the challenge header, where a
        // control character cannot go.
        if (route.Kind is not (RouteKind.VersionCheck or RouteKind.Catalog) && !RepositoryName.TryParse(route.Name, out _))
            throw new NameInvalidException(route.Name);
        var need = Requirement.For(route, context.Request.Method, Names(route.Name, context.Request.Query["ns"]));
        ValidatedToken? token = null;
        var authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var (valid, rejection) = await tokens.ValidateAsync(authorization[7..].Trim());
            if (valid is null)
            {
                logger.LogWarning("Refused {Method} {Repository} ({Action}): {Reason}",
                    context.Request.Method, need.Name, need.Action, rejection!.Reason);
                metrics.AuthFailure("invalid_token");
                throw Refusal(context, need, 401, "UNAUTHORIZED", $"authentication required: {rejection.Reason}", "invalid_token");
            }
            token = valid;
        }
        var user = token?.Subject ?? Anonymous;
        diagnostics.Set("User", user);

        if (route.Kind == RouteKind.VersionCheck)
        {
            // Clients probe /v2/ to learn how to authenticate; Docker only looks for the challenge on a 401, so an
            // unauthenticated probe gets one in both modes (anonymous clients then fetch an anonymous token). That
            // challenge is the handshake every client goes through, not a failure, so it is not counted as one.
            if (token is null) throw Refusal(context, need, 401, "UNAUTHORIZED", "authentication required", null);
            await next(context);
            return;
        }

        if (!need.Names.All(name => Allows(token, need.Type, name, need.Action)))
        {
            logger.LogWarning("Denied {Method} {Repository} ({Action}) to {User}: {Reason}",
                context.Request.Method, need.Name, need.Action, user,
                token is null ? "no token" : "the token does not grant it");
            metrics.AuthFailure(token is null ? "no_token" : "insufficient_scope");
            throw token?.Subject is null
                ? Refusal(context, need, 401, "UNAUTHORIZED", "authentication required", token is null ? null : "insufficient_scope")
                : Refusal(context, need, 403, "DENIED", "requested access to the resource is denied", "insufficient_scope");
        }

        if (route.Kind == RouteKind.UploadStart) GuardMount(context, token, route.Name, user);

        logger.LogDebug("Allowed {Method} {Repository} ({Action}) to {User}", context.Request.Method, need.Name, need.Action, user);
        await next(context);
    }

    private bool Allows(ValidatedToken? token, string type, string name, string action) =>
        token?.Allows(type, name, action) == true || policy.Allows(null, type, name, action);

    /// <summary>
    /// A cross-repository mount also reads the source repository. Without pull access there, the mount is
    /// ignored rather than refused: the endpoint then opens a plain upload session, as it does for any
    /// blob it cannot mount, and the client uploads the blob itself.
    /// </summary>
    private void GuardMount(HttpContext context, ValidatedToken? token, string repository, string user)
    {
        var query = context.Request.Query;
        if (!query.ContainsKey("mount")) return;
        var from = query["from"].ToString();
        if (from.Length > 0 && Names(from, query["ns"]).All(name => Allows(token, ResourceTypes.Repository, name, AccessActions.Pull))) return;
        logger.LogInformation("Mount into {Repository} from {From} not allowed for {User} (no pull on the source): opening a plain upload instead",
            repository, from, user);
        MountPermission.Deny(context);
    }

    /// <summary>The repository as written, and the local repository an <c>ns</c> parameter makes of it when that differs.</summary>
    private IReadOnlyList<string> Names(string name, string? namespaceHint)
    {
        if (string.IsNullOrEmpty(namespaceHint) || !RepositoryName.TryParse(name, out var parsed)) return [name];
        try
        {
            var local = resolver.Resolve(parsed, namespaceHint).Local.Value;
            return local == name ? [name] : [name, local];
        }
        catch (NameInvalidException)
        {
            // The ns hint makes no valid local name: dispatch would refuse the request, so refuse it here.
            throw new NameInvalidException($"{namespaceHint}/{name}");
        }
    }

    private RegistryError Refusal(HttpContext context, Requirement need, int status, string code, string message, string? challengeError)
    {
        var detail = need.Scope is null ? null
            : new JsonArray([.. need.Names.Select(name => RegistryError.DetailOf(("Type", need.Type), ("Name", name), ("Action", need.Action)))]);
        var error = new RegistryError(status, code, message, detail);
        error.Headers["WWW-Authenticate"] = Challenge.Bearer(Challenge.Realm(context.Request, options.Value), options.Value.Service, need.Scope, challengeError);
        return error;
    }

    /// <summary>
    /// What a request needs: one action on each of the resources named (usually one), and the scope(s) a client should
    /// ask a token for, space-separated as the Docker token specification allows.
    /// </summary>
    private sealed record Requirement(string Type, IReadOnlyList<string> Names, string Action, string? Scope)
    {
        public string Name => Names.Count == 0 ? "" : string.Join(' ', Names);

        public static Requirement For(RouteMatch route, string method, IReadOnlyList<string> names)
        {
            switch (route.Kind)
            {
                case RouteKind.VersionCheck:
                    return new Requirement(ResourceTypes.Registry, [], "", null);
                case RouteKind.Catalog:
                    return new Requirement(ResourceTypes.Registry, [ResourceTypes.Catalog], AccessActions.All, AccessScope.Catalog.ToString());
            }
            // Upload sessions (even reading their status) belong to a push; other reads are pulls.
            var action = method switch
            {
                "GET" or "HEAD" when route.Kind != RouteKind.Upload => AccessActions.Pull,
                "DELETE" when route.Kind != RouteKind.Upload => AccessActions.Delete,
                _ => AccessActions.Push,
            };
            // Clients push with a pull,push token (they check what exists first), so that is what to ask for.
            var actions = action == AccessActions.Push ? "pull,push" : action;
            var scope = string.Join(' ', names.Select(name => $"{ResourceTypes.Repository}:{name}:{actions}"));
            return new Requirement(ResourceTypes.Repository, names, action, scope);
        }
    }
}
