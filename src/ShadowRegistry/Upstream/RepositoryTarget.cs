using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>
/// What a request's repository means: the local repository every form of the name maps to, and the upstream
/// repository it shadows (null for a purely local name).
/// </summary>
public sealed record RepositoryTarget(RepositoryName Local, UpstreamRepository? Upstream)
{
    public override string ToString() => Local.Value;
}
