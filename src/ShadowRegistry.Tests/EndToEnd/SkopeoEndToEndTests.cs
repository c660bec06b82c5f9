using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>One registry, one tool sandbox and one offline-built multi-layer OCI image for the skopeo tests.</summary>
public class SkopeoEndToEndFixture : IAsyncLifetime
{
    public const string SourceTag = "v1";

    private RegistryServer? server;
    private HttpClient? client;

    /// <summary>The storage driver the registry runs on (<see cref="ObjectStores"/>).</summary>
    protected virtual string Driver => ObjectStores.Filesystem;

    /// <summary>Why the registry cannot run here (its store's emulator is not installed), or null.</summary>
    private string? skipReason;

    /// <summary>The registry; a test skips when it asks for it and the store cannot run here.</summary>
    public RegistryServer Server => skipReason is { } reason ? throw new SkipException(reason) : server!;

    public HttpClient Client => skipReason is { } reason ? throw new SkipException(reason) : client!;

    public ContainerToolSandbox Sandbox { get; private set; } = null!;

    /// <summary>The source image: an OCI layout with three real tar+gzip layers of random bytes (2, 3 and 4 MiB).</summary>
    public OciImageLayout Source { get; private set; } = null!;

    public OciLayoutImage Image { get; private set; } = null!;

    /// <summary>oci:DIR:v1, the source as skopeo names it.</summary>
    public string SourceReference => $"oci:{Source.Root}:{SourceTag}";

    public async Task InitializeAsync()
    {
        ExternalTool.Require("skopeo");
        Sandbox = new ContainerToolSandbox("skopeo");
        (Source, Image) = OciImageLayout.WriteRandomImage(Sandbox.Folder("source"), SourceTag, seed: 4242, 2 << 20, 3 << 20, 4 << 20);
        skipReason = ObjectStores.SkipReason(Driver);
        if (skipReason is not null) return;
        server = await RegistryServer.StartAsync(ObjectStores.Arguments(Driver));
        client = server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client?.Dispose();
        if (server is not null)
        {
            await server.DisposeAsync();
        }
        if (Sandbox is not null)
        {
            await Sandbox.DisposeAsync();
        }
    }
}

/// <summary>The same over the s3 driver on s3rver (a bucket of its own).</summary>
public sealed class S3SkopeoEndToEndFixture : SkopeoEndToEndFixture
{
    protected override string Driver => ObjectStores.S3;
}

/// <summary>The same over the azure driver on Azurite (a container of its own).</summary>
public sealed class AzureSkopeoEndToEndFixture : SkopeoEndToEndFixture
{
    protected override string Driver => ObjectStores.Azure;
}

/// <summary>
/// skopeo (containers/image) against the real registry on Kestrel: copy in and out, inspect, list-tags, delete; on
/// each storage driver (the subclasses at the end).
/// </summary>
public abstract class SkopeoEndToEndSuite(SkopeoEndToEndFixture fixture, ITestOutputHelper output)
{
    private readonly ExternalTool skopeo = fixture.Sandbox.Skopeo(output);
    private readonly OciLayoutImage image = fixture.Image;

    /// <summary>A property, not a field: on a store that cannot run here, asking for it skips the test.</summary>
    private HttpClient Client => fixture.Client;

    private string Docker(string repositoryAndTag) => $"docker://{fixture.Server.HostPort}/{repositoryAndTag}";

    /// <summary>Byte equality with a short message (Assert.Equal would print megabytes).</summary>
    private static void AssertSameBytes(byte[] expected, byte[] actual, string what) =>
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{what}: {actual.Length} bytes (sha256 {OciImageLayout.Sha256(actual)}) differ from the expected {expected.Length} bytes (sha256 {OciImageLayout.Sha256(expected)})");

    private async Task<string> PushSourceAsync(string repositoryAndTag)
    {
        var digestFile = fixture.Sandbox.FilePath($"pushed-{Guid.NewGuid():N}.digest");
        await skopeo.RunAsync("copy", "--dest-tls-verify=false", "--digestfile", digestFile, fixture.SourceReference, Docker(repositoryAndTag));
        return File.ReadAllText(digestFile).Trim();
    }

    [SkippableFact]
    public async Task CopyIntoRegistryAndBackOutIsByteIdentical()
    {
        var pushed = await PushSourceAsync("e2e/multi:v1");
        Assert.Equal(image.ManifestDigest, pushed);

        // What the registry now serves is exactly what the layout held.
        using (var request = new HttpRequestMessage(HttpMethod.Get, "v2/e2e/multi/manifests/v1"))
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciImageLayout.ManifestMediaType));
            using var response = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(image.Manifest, await response.Content.ReadAsByteArrayAsync());
            Assert.Equal(OciImageLayout.ManifestMediaType, response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(image.ManifestDigest, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
        foreach (var digest in image.LayerDigests.Append(image.ConfigDigest))
        {
            using var response = await Client.GetAsync($"v2/e2e/multi/blobs/{digest}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            AssertSameBytes(fixture.Source.ReadBlob(digest), await response.Content.ReadAsByteArrayAsync(), $"blob {digest} in the registry");
        }

        var destination = new OciImageLayout(fixture.Sandbox.Folder($"pulled-{Guid.NewGuid():N}"));
        var digestFile = fixture.Sandbox.FilePath($"pulled-{Guid.NewGuid():N}.digest");
        await skopeo.RunAsync(
            "copy", "--src-tls-verify=false", "--preserve-digests", "--digestfile", digestFile,
            Docker("e2e/multi:v1"), $"oci:{destination.Root}:copied");
        Assert.Equal(image.ManifestDigest, File.ReadAllText(digestFile).Trim());

        var copied = destination.ReadImage("copied");
        Assert.Equal(image.ManifestDigest, copied.ManifestDigest);
        Assert.Equal(image.Manifest, copied.Manifest);
        Assert.Equal(image.ConfigDigest, copied.ConfigDigest);
        Assert.Equal(image.LayerDigests, copied.LayerDigests);
        Assert.Equal(fixture.Source.BlobDigests().Order(), destination.BlobDigests().Order());
        foreach (var digest in image.AllDigests)
        {
            var bytes = destination.ReadBlob(digest);
            Assert.Equal(digest, OciImageLayout.Sha256(bytes));
            AssertSameBytes(fixture.Source.ReadBlob(digest), bytes, $"blob {digest} after the round trip");
        }
    }

    [SkippableFact]
    public async Task InspectReportsTheDigestLayersAndConfig()
    {
        await PushSourceAsync("e2e/inspect:v1");
        var reference = Docker("e2e/inspect:v1");

        var inspected = JsonNode.Parse((await skopeo.RunAsync("inspect", "--tls-verify=false", reference)).StandardOutput)!;
        Assert.Equal(image.ManifestDigest, (string?)inspected["Digest"]);
        Assert.Equal(image.LayerDigests, inspected["Layers"]!.AsArray().Select(l => (string)l!).ToList());
        Assert.Equal("amd64", (string?)inspected["Architecture"]);
        Assert.Equal("linux", (string?)inspected["Os"]);
        Assert.Equal(["E2E_SEED=4242"], inspected["Env"]!.AsArray().Select(e => (string)e!).ToList());
        Assert.Equal(["v1"], inspected["RepoTags"]!.AsArray().Select(t => (string)t!).ToList());

        var raw = await skopeo.RunAsync("inspect", "--tls-verify=false", "--raw", reference);
        Assert.Equal(image.Manifest, System.Text.Encoding.UTF8.GetBytes(raw.StandardOutput));

        var config = await skopeo.RunAsync("inspect", "--tls-verify=false", "--config", "--raw", reference);
        Assert.Equal(fixture.Source.ReadBlob(image.ConfigDigest), System.Text.Encoding.UTF8.GetBytes(config.StandardOutput));

        // By digest, too.
        var byDigest = JsonNode.Parse((await skopeo.RunAsync("inspect", "--tls-verify=false", Docker($"e2e/inspect@{image.ManifestDigest}"))).StandardOutput)!;
        Assert.Equal(image.ManifestDigest, (string?)byDigest["Digest"]);
    }

    [SkippableFact]
    public async Task ListTagsReturnsThePushedTags()
    {
        await PushSourceAsync("e2e/tags:v1");
        // Registry to registry: same repository (blobs already there), and another repository (cross-repository mount).
        await skopeo.RunAsync("copy", "--src-tls-verify=false", "--dest-tls-verify=false", Docker("e2e/tags:v1"), Docker("e2e/tags:v2"));
        await skopeo.RunAsync("copy", "--src-tls-verify=false", "--dest-tls-verify=false", Docker("e2e/tags:v1"), Docker("e2e/tags:latest"));
        await skopeo.RunAsync("copy", "--src-tls-verify=false", "--dest-tls-verify=false", Docker("e2e/tags:v2"), Docker("e2e/tags-mirror:only"));

        var listed = JsonNode.Parse((await skopeo.RunAsync("list-tags", "--tls-verify=false", Docker("e2e/tags"))).StandardOutput)!;
        Assert.Equal($"{fixture.Server.HostPort}/e2e/tags", (string?)listed["Repository"]);
        Assert.Equal(["latest", "v1", "v2"], listed["Tags"]!.AsArray().Select(t => (string)t!).Order(StringComparer.Ordinal).ToList());

        var mirror = JsonNode.Parse((await skopeo.RunAsync("list-tags", "--tls-verify=false", Docker("e2e/tags-mirror"))).StandardOutput)!;
        Assert.Equal(["only"], mirror["Tags"]!.AsArray().Select(t => (string)t!).ToList());
        var mirrored = JsonNode.Parse((await skopeo.RunAsync("inspect", "--tls-verify=false", Docker("e2e/tags-mirror:only"))).StandardOutput)!;
        Assert.Equal(image.ManifestDigest, (string?)mirrored["Digest"]);
    }

    [SkippableFact]
    public async Task DeleteRemovesTheManifest()
    {
        await PushSourceAsync("e2e/delete:v1");
        await skopeo.RunAsync("inspect", "--tls-verify=false", "--raw", Docker("e2e/delete:v1"));

        await skopeo.RunAsync("delete", "--tls-verify=false", Docker("e2e/delete:v1"));

        var inspect = await skopeo.TryRunAsync("inspect", "--tls-verify=false", Docker("e2e/delete:v1"));
        Assert.False(inspect.Succeeded, $"inspect of a deleted image must fail.\n{inspect.Describe()}");
        Assert.Contains("manifest unknown", inspect.StandardError, StringComparison.OrdinalIgnoreCase);

        var byDigest = await skopeo.TryRunAsync("inspect", "--tls-verify=false", "--raw", Docker($"e2e/delete@{image.ManifestDigest}"));
        Assert.False(byDigest.Succeeded, $"inspect by digest of a deleted image must fail.\n{byDigest.Describe()}");

        foreach (var reference in new[] { "v1", image.ManifestDigest })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/e2e/delete/manifests/{reference}");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciImageLayout.ManifestMediaType));
            using var response = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        // The repository still holds its layers, so it still answers, with no tags left.
        var tags = await skopeo.RunAsync("list-tags", "--tls-verify=false", Docker("e2e/delete"));
        Assert.Empty(JsonNode.Parse(tags.StandardOutput)!["Tags"]!.AsArray());
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class SkopeoEndToEndTests(SkopeoEndToEndFixture fixture, ITestOutputHelper output)
    : SkopeoEndToEndSuite(fixture, output), IClassFixture<SkopeoEndToEndFixture>;

/// <summary>Over the s3 driver on s3rver: clients see no difference.</summary>
public sealed class SkopeoEndToEndTestsOnS3(S3SkopeoEndToEndFixture fixture, ITestOutputHelper output)
    : SkopeoEndToEndSuite(fixture, output), IClassFixture<S3SkopeoEndToEndFixture>;

/// <summary>Over the azure driver on Azurite: clients see no difference.</summary>
public sealed class SkopeoEndToEndTestsOnAzure(AzureSkopeoEndToEndFixture fixture, ITestOutputHelper output)
    : SkopeoEndToEndSuite(fixture, output), IClassFixture<AzureSkopeoEndToEndFixture>;
