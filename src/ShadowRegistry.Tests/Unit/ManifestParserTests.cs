using System.Text;
using ShadowRegistry.Api;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;

namespace ShadowRegistry.Tests.Unit;

public sealed class ManifestParserTests
{
    private static readonly string Config = "sha256:" + new string('c', 64);
    private static readonly string Layer = "sha256:" + new string('1', 64);
    private static readonly string Foreign = "sha256:" + new string('f', 64);

    private static ParsedManifest Parse(string json, string? contentType) => ManifestParser.Parse(Encoding.UTF8.GetBytes(json), contentType);

    [Fact]
    public void ImageManifestListsConfigAndLayersButNotForeignLayers()
    {
        var manifest = Parse($$"""
            {"schemaVersion":2,"mediaType":"{{MediaTypes.DockerManifest}}",
             "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{{Config}}","size":10},
             "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{{Layer}}","size":20},
                       {"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{{Foreign}}","size":30,"urls":["https://example.invalid/x"]}]}
            """, MediaTypes.DockerManifest);
        Assert.Equal(MediaTypes.DockerManifest, manifest.MediaType);
        Assert.Equal([(Digest.Parse(Config), 10L), (Digest.Parse(Layer), 20L)], manifest.Blobs);
        Assert.Null(manifest.Subject);
    }

    [Fact]
    public void MediaTypeIsTakenFromBodyWhenContentTypeIsGeneric()
    {
        var manifest = Parse($$"""{"schemaVersion":2,"mediaType":"{{MediaTypes.OciIndex}}","manifests":[]}""", "application/json");
        Assert.Equal(MediaTypes.OciIndex, manifest.MediaType);
    }

    [Fact]
    public void MediaTypeIsInferredWhenAbsentEverywhere()
    {
        Assert.Equal(MediaTypes.OciIndex, Parse("""{"schemaVersion":2,"manifests":[]}""", null).MediaType);
        var image = Parse($$"""{"schemaVersion":2,"config":{"mediaType":"x","digest":"{{Config}}","size":1},"layers":[]}""", null);
        Assert.Equal(MediaTypes.OciManifest, image.MediaType);
        Assert.Equal("x", image.ArtifactType);
    }

    [Fact]
    public void ArtifactTypeAndSubjectAreRead()
    {
        var manifest = Parse($$"""
            {"schemaVersion":2,"mediaType":"{{MediaTypes.OciManifest}}","artifactType":"application/vnd.example",
             "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{{Config}}","size":2},"layers":[],
             "subject":{"mediaType":"{{MediaTypes.OciManifest}}","digest":"{{Layer}}","size":5},
             "annotations":{"a":"b"} }
            """, MediaTypes.OciManifest);
        Assert.Equal("application/vnd.example", manifest.ArtifactType);
        Assert.Equal((Digest.Parse(Layer), 5L), manifest.Subject);
        Assert.Equal("b", manifest.Annotations!["a"]);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("\"string\"", "JSON object")]
    [InlineData("{\"schemaVersion\":\"2\"}", "schemaVersion")]
    [InlineData("{\"schemaVersion\":2,\"layers\":[]}", "config")]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:00\",\"size\":1,\"mediaType\":\"x\"},\"layers\":[]}", "digest")]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"size\":1},\"layers\":[]}", "digest")]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"},\"layers\":[]}", "size")]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\",\"size\":-1},\"layers\":[]}", "size")]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\",\"size\":1}}", "layers")]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}", "unsupported")]
    public void InvalidManifestsAreManifestInvalid(string json, string messagePart)
    {
        var error = RegistryErrorMapper.TryMap(Assert.Throws<ManifestInvalidException>(() => Parse(json, null)))!;
        Assert.Equal("MANIFEST_INVALID", error.Code);
        Assert.Equal(400, error.Status);
        Assert.Contains(messagePart, error.Message);
    }
}
