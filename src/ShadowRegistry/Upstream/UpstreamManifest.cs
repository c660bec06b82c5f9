using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>A manifest as the upstream served it; Content is null when only its headers were fetched (HEAD).</summary>
public sealed record UpstreamManifest(Digest Digest, string MediaType, long Size, byte[]? Content);
