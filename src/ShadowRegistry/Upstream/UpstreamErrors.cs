using ShadowRegistry.Api;

namespace ShadowRegistry.Upstream;

public static class UpstreamErrors
{
    /// <summary>The upstream could not answer (down, timing out, circuit open, or failing): a 503 the client may retry.</summary>
    public static RegistryError Unavailable(UpstreamRegistry upstream, string reason) =>
        new(503, "UNAVAILABLE", $"upstream registry {upstream.Name} is unavailable: {reason}");

    /// <summary>The upstream answered with content that does not verify: never passed on.</summary>
    public static RegistryError BadContent(UpstreamRegistry upstream, string reason) =>
        new(502, "UNAVAILABLE", $"upstream registry {upstream.Name} sent invalid content: {reason}");
}
