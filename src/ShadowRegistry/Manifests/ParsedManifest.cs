using ShadowRegistry.Domain;

namespace ShadowRegistry.Manifests;

/// <summary>What the registry needs to know of a pushed manifest: its type and what it references.</summary>
public sealed record ParsedManifest(
    string MediaType,
    IReadOnlyList<(Digest Digest, long Size)> Blobs,
    IReadOnlyList<(Digest Digest, long Size)> Manifests,
    (Digest Digest, long Size)? Subject,
    string? ArtifactType,
    Dictionary<string, string>? Annotations);
