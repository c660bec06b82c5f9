namespace ShadowRegistry.Upstream;

/// <summary>What an outgoing upstream request carries for the handlers below it (auth, resilience).</summary>
public static class UpstreamRequestOptions
{
    public static readonly HttpRequestOptionsKey<UpstreamRegistry> Registry = new("ShadowRegistry.Upstream");
    public static readonly HttpRequestOptionsKey<string> Scope = new("ShadowRegistry.Scope");

    public static void Tag(HttpRequestMessage request, UpstreamRepository repository)
    {
        request.Options.Set(Registry, repository.Registry);
        request.Options.Set(Scope, repository.PullScope);
    }
}
