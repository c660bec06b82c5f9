using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>An image as written into an OCI image layout: the manifest bytes and the digests it names.</summary>
public sealed record OciLayoutImage(string ManifestDigest, byte[] Manifest, string ConfigDigest, IReadOnlyList<string> LayerDigests)
{
    /// <summary>Every blob the image consists of: manifest, config and layers.</summary>
    public IEnumerable<string> AllDigests => new[] { ManifestDigest, ConfigDigest }.Concat(LayerDigests);
}

/// <summary>
/// An OCI image layout folder (oci-layout, index.json, blobs/sha256/...), as skopeo's <c>oci:</c> transport reads and
/// writes it. <see cref="WriteRandomImage"/> builds one offline: real tar+gzip layers of random bytes and a config whose
/// rootfs.diff_ids match them.
/// </summary>
public sealed class OciImageLayout(string root)
{
    public const string ManifestMediaType = "application/vnd.oci.image.manifest.v1+json";
    public const string ConfigMediaType = "application/vnd.oci.image.config.v1+json";
    public const string LayerMediaType = "application/vnd.oci.image.layer.v1.tar+gzip";
    private const string RefNameAnnotation = "org.opencontainers.image.ref.name";

    public string Root { get; } = root;

    public static string Sha256(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>Writes a new layout at <paramref name="root"/> holding one image tagged <paramref name="tag"/>.</summary>
    public static (OciImageLayout Layout, OciLayoutImage Image) WriteRandomImage(string root, string tag, int seed, params int[] layerSizes)
    {
        var layout = new OciImageLayout(root);
        Directory.CreateDirectory(Path.Combine(root, "blobs", "sha256"));
        File.WriteAllText(Path.Combine(root, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");

        var random = new Random(seed);
        var layers = new JsonArray();
        var diffIds = new JsonArray();
        var layerDigests = new List<string>();
        for (var i = 0; i < layerSizes.Length; i++)
        {
            var payload = new byte[layerSizes[i]];
            random.NextBytes(payload);
            var tar = Tar($"layer{i}/random-{seed}-{i}.bin", payload);
            var gzip = Gzip(tar);
            diffIds.Add(Sha256(tar));
            var digest = layout.WriteBlob(gzip);
            layerDigests.Add(digest);
            layers.Add(Descriptor(LayerMediaType, digest, gzip.Length));
        }

        var config = Utf8(new JsonObject
        {
            ["created"] = "2024-01-01T00:00:00Z",
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["config"] = new JsonObject { ["Env"] = new JsonArray("E2E_SEED=" + seed) },
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = diffIds },
        });
        var configDigest = layout.WriteBlob(config);

        var manifest = Utf8(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = ManifestMediaType,
            ["config"] = Descriptor(ConfigMediaType, configDigest, config.Length),
            ["layers"] = layers,
            ["annotations"] = new JsonObject { ["org.shadowregistry.e2e.seed"] = seed.ToString() },
        });
        var manifestDigest = layout.WriteBlob(manifest);

        var manifestDescriptor = Descriptor(ManifestMediaType, manifestDigest, manifest.Length);
        manifestDescriptor["annotations"] = new JsonObject { [RefNameAnnotation] = tag };
        File.WriteAllBytes(Path.Combine(root, "index.json"), Utf8(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = "application/vnd.oci.image.index.v1+json",
            ["manifests"] = new JsonArray(manifestDescriptor),
        }));
        return (layout, new OciLayoutImage(manifestDigest, manifest, configDigest, layerDigests));
    }

    public string BlobPath(string digest)
    {
        Assert.StartsWith("sha256:", digest);
        return Path.Combine(Root, "blobs", "sha256", digest["sha256:".Length..]);
    }

    public byte[] ReadBlob(string digest)
    {
        var path = BlobPath(digest);
        Assert.True(File.Exists(path), $"blob {digest} is missing from the OCI layout {Root}");
        return File.ReadAllBytes(path);
    }

    /// <summary>Digests of all files under blobs/sha256.</summary>
    public IReadOnlySet<string> BlobDigests() =>
        Directory.EnumerateFiles(Path.Combine(Root, "blobs", "sha256")).Select(f => "sha256:" + Path.GetFileName(f)).ToHashSet();

    /// <summary>Finds the image tagged <paramref name="tag"/> in index.json and reads its manifest.</summary>
    public OciLayoutImage ReadImage(string tag)
    {
        var index = JsonNode.Parse(File.ReadAllBytes(Path.Combine(Root, "index.json")))!;
        var descriptor = index["manifests"]!.AsArray()
            .SingleOrDefault(m => (string?)m!["annotations"]?[RefNameAnnotation] == tag);
        Assert.True(descriptor is not null, $"no manifest tagged '{tag}' in {Root}/index.json: {index.ToJsonString()}");
        var digest = (string)descriptor!["digest"]!;
        var manifest = ReadBlob(digest);
        Assert.Equal(digest, Sha256(manifest));
        Assert.Equal(manifest.Length, (long)descriptor["size"]!);
        var parsed = JsonNode.Parse(manifest)!;
        return new OciLayoutImage(
            digest,
            manifest,
            (string)parsed["config"]!["digest"]!,
            parsed["layers"]!.AsArray().Select(l => (string)l!["digest"]!).ToList());
    }

    private string WriteBlob(byte[] content)
    {
        var digest = Sha256(content);
        File.WriteAllBytes(BlobPath(digest), content);
        return digest;
    }

    private static JsonObject Descriptor(string mediaType, string digest, long size) =>
        new() { ["mediaType"] = mediaType, ["digest"] = digest, ["size"] = size };

    private static byte[] Utf8(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString());

    private static byte[] Tar(string name, byte[] payload)
    {
        using var buffer = new MemoryStream();
        using (var writer = new TarWriter(buffer, TarEntryFormat.Pax, leaveOpen: true))
        {
            var folder = name[..name.LastIndexOf('/')] + "/";
            writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, folder)
            {
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute,
                ModificationTime = new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero),
            });
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
            {
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                ModificationTime = new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero),
                DataStream = new MemoryStream(payload),
            });
        }
        return buffer.ToArray();
    }

    private static byte[] Gzip(byte[] content)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(content);
        }
        return buffer.ToArray();
    }

    /// <summary>The bytes of the regular file <paramref name="name"/> in a (gzip-compressed) tar layer, or null.</summary>
    public static byte[]? ReadFileFromLayer(byte[] layer, string name)
    {
        using var raw = new MemoryStream(layer);
        Stream tarStream = layer is [0x1f, 0x8b, ..] ? new GZipStream(raw, CompressionMode.Decompress) : raw;
        using (tarStream)
        {
            using var reader = new TarReader(tarStream);
            while (reader.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile
                    && entry.Name.TrimStart('.').TrimStart('/') == name.TrimStart('/')
                    && entry.DataStream is not null)
                {
                    using var content = new MemoryStream();
                    entry.DataStream.CopyTo(content);
                    return content.ToArray();
                }
            }
        }
        return null;
    }
}
