using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Auth;

/// <summary>A configured user, its password hash and what its role allows where.</summary>
public sealed record RegistryUser(string Name, string PasswordHash, bool CanWrite, IReadOnlyList<RepositoryPattern> Patterns)
{
    /// <summary>
    /// A credential a speculative change was created with: push and pull through that change's view only, and never
    /// the management API (a job must not promote or delete its own change, or any other).
    /// </summary>
    public bool IsChangeCredential { get; init; }

    /// <summary>Whether the user's role applies to this repository (no patterns: every repository).</summary>
    public bool Covers(string repository) => Patterns.Count == 0 || Patterns.Any(pattern => pattern.Matches(repository));

    public bool CoversEverything => Patterns.Count == 0;

    public string Role => CanWrite ? AuthRoles.Write : AuthRoles.Read;

    public static RegistryUser From(AuthUser user)
    {
        var patterns = user.Repositories.Select(text =>
            RepositoryPattern.TryParse(text, out var pattern) ? pattern : throw new InvalidOperationException($"invalid repository pattern '{text}' for user '{user.Name}'"));
        return new RegistryUser(user.Name, user.PasswordHash, string.Equals(user.Role, AuthRoles.Write, StringComparison.OrdinalIgnoreCase), patterns.ToArray());
    }
}

/// <summary>
/// Decides what a principal (a user, or null for anonymous) may do: <c>pull</c> needs the read or write role on the
/// repository, or anonymous pull; <c>push</c> and <c>delete</c> need the write role; the catalog needs read access
/// to every repository (or anonymous pull), since it names them all.
/// </summary>
public sealed class AccessPolicy(IOptions<AuthOptions> options)
{
    private static readonly string[] RepositoryActions = [AccessActions.Pull, AccessActions.Push, AccessActions.Delete];

    public bool AnonymousPull { get; } = options.Value.AnonymousPull;

    public bool Allows(RegistryUser? user, string type, string name, string action)
    {
        if (type == ResourceTypes.Repository)
        {
            return action switch
            {
                AccessActions.Pull => AnonymousPull || user is not null && user.Covers(name),
                AccessActions.Push or AccessActions.Delete => user is { CanWrite: true } && user.Covers(name),
                _ => false,
            };
        }
        if (type == ResourceTypes.Registry && name == ResourceTypes.Catalog && action == AccessActions.All)
        {
            return AnonymousPull || user is { CoversEverything: true };
        }
        return false;
    }

    /// <summary>
    /// The part of the requested scopes the principal is allowed, as the token's access claim. Like the Docker token
    /// specification, a request for more than is allowed is not an error: the token grants what it can, possibly
    /// nothing, and the registry refuses what the token lacks. A requested "*" is expanded to the actions allowed.
    /// </summary>
    public IReadOnlyList<AccessScope> Grant(RegistryUser? user, IReadOnlyList<AccessScope> requested)
    {
        var granted = new List<AccessScope>();
        foreach (var scope in requested)
        {
            if (scope.Type == ResourceTypes.Repository)
            {
                // Only well-formed names: the grant then names nothing a request could not name.
                if (!RepositoryName.TryParse(scope.Name, out _)) continue;
                var wanted = scope.Actions.Contains(AccessActions.All) ? RepositoryActions : scope.Actions;
                var actions = wanted.Where(action => Allows(user, scope.Type, scope.Name, action)).Distinct().ToArray();
                if (actions.Length > 0) granted.Add(new AccessScope(scope.Type, scope.Name, actions));
            }
            else if (scope.Type == ResourceTypes.Registry && scope.Name == ResourceTypes.Catalog
                     && scope.Actions.Contains(AccessActions.All) && Allows(user, scope.Type, scope.Name, AccessActions.All))
            {
                granted.Add(AccessScope.Catalog);
            }
        }
        return granted;
    }
}
