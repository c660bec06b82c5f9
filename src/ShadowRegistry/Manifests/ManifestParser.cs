using System.Text.Json;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Manifests;

/// <summary>Parses and structurally validates image manifests and indexes (OCI and Docker schema2).</summary>
public static class ManifestParser
{
    /// <param name="contentType">The request's Content-Type, which decides the type when it names a manifest type.</param>
    public static ParsedManifest Parse(ReadOnlySpan<byte> content, string? contentType)
    {
        // JSON text is UTF-8; the reader checks structure, not the bytes inside strings (reading one would throw later).
        if (!System.Text.Unicode.Utf8.IsValid(content)) throw new ManifestInvalidException("manifest is not valid UTF-8");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(content.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new ManifestInvalidException($"manifest is not valid JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ManifestInvalidException("manifest must be a JSON object");
            if (!root.TryGetProperty("schemaVersion", out var version) || version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out var v) || v != 2)
                throw new ManifestInvalidException("manifest schemaVersion must be 2 (schema 1 is not supported)");

            var declared = OptionalString(root, "mediaType");
            var mediaType = ResolveMediaType(contentType, declared, root);

            var subject = root.TryGetProperty("subject", out var subjectElement) && subjectElement.ValueKind != JsonValueKind.Null
                ? ReadDescriptor(subjectElement, "subject")
                : default((Digest, long, Descriptor)?);
            var annotations = ReadAnnotations(root);
            var artifactType = OptionalString(root, "artifactType");

            if (MediaTypes.IsIndex(mediaType))
            {
                var manifests = ReadDescriptorArray(root, "manifests", required: true)
                    .Select(d => (d.Digest, d.Size)).ToList();
                return new ParsedManifest(mediaType, [], manifests, subject is { } s ? (s.Item1, s.Item2) : null, artifactType, annotations);
            }

            if (!root.TryGetProperty("config", out var configElement))
                throw new ManifestInvalidException("image manifest has no config descriptor");
            var config = ReadDescriptor(configElement, "config");
            var blobs = new List<(Digest, long)> { (config.Digest, config.Size) };
            foreach (var layer in ReadDescriptorArray(root, "layers", required: true))
            {
                // Non-distributable layers are fetched from their URLs by clients, never from a registry.
                if (MediaTypes.IsForeignLayer(layer.Descriptor.MediaType)) continue;
                blobs.Add((layer.Digest, layer.Size));
            }
            artifactType ??= mediaType == MediaTypes.OciManifest ? config.Descriptor.MediaType : null;
            return new ParsedManifest(mediaType, blobs, [], subject is { } t ? (t.Item1, t.Item2) : null, artifactType, annotations);
        }
    }

    private static string ResolveMediaType(string? contentType, string? declared, JsonElement root)
    {
        var fromHeader = contentType?.Split(';')[0].Trim();
        if (fromHeader is "" or MediaTypes.Json or MediaTypes.OctetStream) fromHeader = null;
        if (fromHeader is not null && declared is not null && fromHeader != declared)
            throw new ManifestInvalidException($"Content-Type '{fromHeader}' does not match the manifest's mediaType '{declared}'");
        var mediaType = fromHeader ?? declared
            ?? (root.TryGetProperty("manifests", out _) ? MediaTypes.OciIndex : MediaTypes.OciManifest);
        if (!MediaTypes.IsSupportedManifest(mediaType))
            throw new ManifestInvalidException($"unsupported manifest media type '{mediaType}'");
        return mediaType;
    }

    private static IEnumerable<(Digest Digest, long Size, Descriptor Descriptor)> ReadDescriptorArray(JsonElement root, string property, bool required)
    {
        if (!root.TryGetProperty(property, out var array) || array.ValueKind == JsonValueKind.Null)
        {
            if (required) throw new ManifestInvalidException($"manifest has no '{property}' array");
            return [];
        }
        if (array.ValueKind != JsonValueKind.Array) throw new ManifestInvalidException($"'{property}' must be an array");
        return array.EnumerateArray().Select((element, i) => ReadDescriptor(element, $"{property}[{i}]")).ToList();
    }

    private static (Digest Digest, long Size, Descriptor Descriptor) ReadDescriptor(JsonElement element, string where)
    {
        if (element.ValueKind != JsonValueKind.Object) throw new ManifestInvalidException($"{where} must be a descriptor object");
        Descriptor? descriptor;
        try
        {
            descriptor = element.Deserialize(ManifestJson.Default.Descriptor);
        }
        catch (JsonException e)
        {
            throw new ManifestInvalidException($"{where} is not a valid descriptor: {e.Message}");
        }
        if (descriptor is null || string.IsNullOrEmpty(descriptor.MediaType))
            throw new ManifestInvalidException($"{where} has no mediaType");
        if (!Digest.TryParse(descriptor.Digest, out var digest))
            throw new ManifestInvalidException($"{where} has an invalid or unsupported digest '{descriptor.Digest}'");
        if (!element.TryGetProperty("size", out _) || descriptor.Size < 0)
            throw new ManifestInvalidException($"{where} has no valid size");
        return (digest, descriptor.Size, descriptor);
    }

    private static string? OptionalString(JsonElement root, string property) =>
        root.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static Dictionary<string, string>? ReadAnnotations(JsonElement root)
    {
        if (!root.TryGetProperty("annotations", out var element) || element.ValueKind != JsonValueKind.Object) return null;
        try
        {
            return element.Deserialize(ManifestJson.Default.DictionaryStringString);
        }
        catch (JsonException e)
        {
            throw new ManifestInvalidException($"annotations must map strings to strings: {e.Message}");
        }
    }
}
