using System.Text.Json.Serialization;

namespace ShadowRegistry.Manifests;

/// <summary>An OCI content descriptor, as found in manifests and returned by the referrers API.</summary>
public sealed record Descriptor
{
    [JsonPropertyName("mediaType")] public string MediaType { get; init; } = "";
    [JsonPropertyName("digest")] public string Digest { get; init; } = "";
    [JsonPropertyName("size")] public long Size { get; init; }
    [JsonPropertyName("artifactType")] public string? ArtifactType { get; init; }
    [JsonPropertyName("annotations")] public Dictionary<string, string>? Annotations { get; init; }
    [JsonPropertyName("urls")] public string[]? Urls { get; init; }
}

/// <summary>An OCI image index, as the referrers API answers.</summary>
public sealed record ImageIndex(
    [property: JsonPropertyName("schemaVersion")] int SchemaVersion,
    [property: JsonPropertyName("mediaType")] string MediaType,
    [property: JsonPropertyName("manifests")] List<Descriptor> Manifests);

/// <summary>
/// Descriptors, annotations and indexes as JSON, by generated code rather than reflection (the Native AOT build has no
/// reflection-based serializer). Absent optional fields are left out, as OCI clients expect.
/// </summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Descriptor))]
[JsonSerializable(typeof(ImageIndex))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class ManifestJson : JsonSerializerContext;
