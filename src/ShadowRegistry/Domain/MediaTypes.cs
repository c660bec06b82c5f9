namespace ShadowRegistry.Domain;

public static class MediaTypes
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string OctetStream = "application/octet-stream";
    public const string Json = "application/json";

    /// <summary>Layers a manifest may reference without the registry holding them (Windows base layers).</summary>
    public static bool IsForeignLayer(string? mediaType) =>
        mediaType is "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            or "application/vnd.oci.image.layer.nondistributable.v1.tar"
            or "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            or "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerManifestList;

    public static bool IsImageManifest(string mediaType) => mediaType is OciManifest or DockerManifest;

    public static bool IsSupportedManifest(string mediaType) => IsIndex(mediaType) || IsImageManifest(mediaType);

    /// <summary>
    /// Whether Accept header values admit a manifest of this type: no header, a wildcard, plain JSON or the manifest's
    /// own type; anything else gets no manifest.
    /// </summary>
    public static bool Accepts(IReadOnlyCollection<string?> acceptValues, string mediaType)
    {
        if (acceptValues.Count == 0) return true;
        foreach (var value in acceptValues)
        {
            if (string.IsNullOrWhiteSpace(value)) return true;
            foreach (var part in value.Split(','))
            {
                var type = part.Split(';')[0].Trim();
                if (type.Length == 0 || type is "*/*" or "application/*" or Json || type == mediaType) return true;
            }
        }
        return false;
    }
}
