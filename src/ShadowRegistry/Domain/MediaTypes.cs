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
}
