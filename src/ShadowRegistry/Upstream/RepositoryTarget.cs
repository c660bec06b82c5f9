using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>
/// What a request's repository means: the local repository every form of the name maps to, the upstream
/// repository it shadows (null for a purely local name), and the name and ns hint as the client wrote them.
/// </summary>
public sealed record RepositoryTarget(RepositoryName Local, UpstreamRepository? Upstream, RepositoryName Requested, string? Namespace)
{
    /// <summary>The speculative change the request reads and writes through, or null for the base namespace.</summary>
    public Changes.ChangeView? View { get; init; }

    /// <summary>
    /// What the client's URLs put before the repository name to address the view ("changes/&lt;id&gt;/" in the path
    /// form), so Location and Link headers lead back through the same view. Empty otherwise, and in the host form.
    /// </summary>
    public string ViewPrefix { get; init; } = "";

    /// <summary>Where writes land: the change's own overlay when there is a view, else the local repository.</summary>
    public RepositoryName Writes => View is { } view ? Local.In(view.Overlays[0]) : Local;

    /// <summary>
    /// A URL below this repository in the client's own terms (its name and ns hint), for Location and Link headers:
    /// following it reaches the same local repository and needs no access beyond what the client asked for.
    /// </summary>
    public string Url(string suffix)
    {
        var url = $"/v2/{ViewPrefix}{Requested.Value}/{suffix}";
        return Namespace is null ? url : $"{url}{(suffix.Contains('?') ? '&' : '?')}ns={Uri.EscapeDataString(Namespace)}";
    }

    public override string ToString() => Local.Value;
}
