using Microsoft.Extensions.Options;
using ShadowRegistry.Changes;
using ShadowRegistry.Domain;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>
/// What the repository of a request stands for: the base namespace (local, maybe shadowing an upstream), or that
/// repository seen through a speculative change's view when the request addresses a change.
/// </summary>
public sealed class TargetResolver(RepositoryResolver resolver, ChangeService changes, IOptions<ChangeOptions> options)
{
    public async Task<RepositoryTarget> ResolveAsync(RouteMatch route, string? namespaceHint, CancellationToken cancellationToken)
    {
        if (route.Change is null) return resolver.Resolve(Name(route.Name), namespaceHint);
        var view = await ViewAsync(route.Change, cancellationToken);
        var target = resolver.Resolve(Name(route.RepositoryPart), namespaceHint);
        return target with { View = view, ViewPrefix = route.ByHost ? "" : $"{options.Value.PathPrefix}/{route.Change}/" };
    }

    /// <summary>A repository named as a client names it in a URL path (a mount's "from"), through a view or not.</summary>
    public Task<RepositoryTarget> ResolveAsync(string name, string? namespaceHint, CancellationToken cancellationToken) =>
        ResolveAsync(RouteMatch.Parse($"/v2/{name}/tags/list", options.Value.PathPrefix) ?? throw new NameInvalidException(name), namespaceHint,
            cancellationToken);

    /// <summary>The view of a live change; a change that is unknown or expired is 404 NAME_UNKNOWN, saying which.</summary>
    public Task<ChangeView> ViewAsync(string change, CancellationToken cancellationToken) =>
        changes.ViewAsync(ChangeId.TryParse(change, out var id) ? id : throw new NameInvalidException($"{options.Value.PathPrefix}/{change}"),
            cancellationToken);

    private static RepositoryName Name(string value) =>
        RepositoryName.TryParse(value, out var name) ? name : throw new NameInvalidException(value);
}
