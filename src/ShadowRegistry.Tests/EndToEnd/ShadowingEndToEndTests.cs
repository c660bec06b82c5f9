using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// A real upstream (Debian's docker-registry, CNCF distribution 2.8, on loopback) holding images pushed there by skopeo,
/// a ShadowRegistry whose default upstream it is (named <see cref="UpstreamName"/>), and a tool sandbox whose
/// registries.conf makes the ShadowRegistry a mirror of <see cref="UpstreamName"/>. That host name never resolves
/// (.test is reserved), so whatever skopeo and podman pull under it was served by the mirror.
/// </summary>
public sealed class ShadowingEndToEndFixture : IAsyncLifetime
{
    public const string UpstreamName = "upstream.test";

    /// <summary>Repositories the upstream holds, each with tag v1 = <see cref="UpstreamImage"/>; team/tags also has v2.</summary>
    public static readonly string[] SeededRepositories = ["team/app", "team/forms", "team/shadowed", "team/tags"];

    public UpstreamDistribution Upstream { get; private set; } = null!;

    public HttpClient UpstreamClient { get; private set; } = null!;

    public RegistryServer Server { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public ContainerToolSandbox Sandbox { get; private set; } = null!;

    /// <summary>The image the upstream holds: two real tar+gzip layers.</summary>
    public OciImageLayout UpstreamLayout { get; private set; } = null!;

    public OciLayoutImage UpstreamImage { get; private set; } = null!;

    /// <summary>A different image, pushed only to the ShadowRegistry.</summary>
    public OciImageLayout LocalLayout { get; private set; } = null!;

    public OciLayoutImage LocalImage { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ExternalTool.Require("skopeo");
        ExternalTool.Require("podman");
        ExternalTool.Require("docker-registry");
        Sandbox = new ContainerToolSandbox("shadow");
        (UpstreamLayout, UpstreamImage) = OciImageLayout.WriteRandomImage(Sandbox.Folder("upstream-image"), "v1", seed: 1101, 512 << 10, 1 << 20);
        (LocalLayout, LocalImage) = OciImageLayout.WriteRandomImage(Sandbox.Folder("local-image"), "v1", seed: 2202, 256 << 10);
        Assert.NotEqual(UpstreamImage.ManifestDigest, LocalImage.ManifestDigest);

        Upstream = await UpstreamDistribution.StartAsync();
        UpstreamClient = Upstream.CreateClient();
        var skopeo = Sandbox.Skopeo();
        foreach (var repository in SeededRepositories)
        {
            var digestFile = Sandbox.FilePath($"seed-{Guid.NewGuid():N}.digest");
            await skopeo.RunAsync("copy", "--dest-tls-verify=false", "--digestfile", digestFile,
                $"oci:{UpstreamLayout.Root}:v1", $"docker://{Upstream.HostPort}/{repository}:v1");
            Assert.Equal(UpstreamImage.ManifestDigest, File.ReadAllText(digestFile).Trim());
        }
        await skopeo.RunAsync("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
            $"docker://{Upstream.HostPort}/team/tags:v1", $"docker://{Upstream.HostPort}/team/tags:v2");

        Server = await RegistryServer.StartAsync(
            $"--Shadow:Upstreams:{UpstreamName}:Url", Upstream.BaseAddress.ToString(),
            $"--Shadow:Upstreams:{UpstreamName}:Default", "true");
        Client = Server.CreateClient();
        Sandbox.UseMirror(UpstreamName, Server.HostPort);
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
        UpstreamClient?.Dispose();
        if (Upstream is not null)
        {
            await Upstream.DisposeAsync();
        }
        if (Sandbox is not null)
        {
            await Sandbox.DisposeAsync();
        }
    }
}

/// <summary>
/// Shadowing end to end: skopeo and podman pull an upstream image through the ShadowRegistry configured as a
/// registries.conf mirror; a local push under the same name:tag shadows it, deleting the local tag uncovers it again;
/// the containerd (?ns=), path-prefix and default-upstream name forms all reach the same content; tag lists merge; and
/// nothing written to the ShadowRegistry ever reaches the upstream.
/// </summary>
public sealed class ShadowingEndToEndTests(ShadowingEndToEndFixture fixture, ITestOutputHelper output) : IClassFixture<ShadowingEndToEndFixture>
{
    private const string Upstream = ShadowingEndToEndFixture.UpstreamName;

    private static readonly string[] ManifestTypes = [OciHttp.OciManifest, OciHttp.OciIndex, OciHttp.DockerManifest, OciHttp.DockerManifestList];

    private readonly ExternalTool skopeo = fixture.Sandbox.Skopeo(output);
    private readonly ExternalTool podman = fixture.Sandbox.Podman(output);
    private readonly HttpClient client = fixture.Client;
    private readonly OciLayoutImage upstreamImage = fixture.UpstreamImage;
    private readonly OciLayoutImage localImage = fixture.LocalImage;

    /// <summary>docker://upstream.test/REPO:TAG: the name clients use; registries.conf sends it to the mirror.</summary>
    private static string Mirrored(string repositoryAndTag) => $"docker://{Upstream}/{repositoryAndTag}";

    /// <summary>docker://127.0.0.1:PORT/REPO:TAG: the ShadowRegistry addressed directly.</summary>
    private string Shadow(string repositoryAndTag) => $"docker://{fixture.Server.HostPort}/{repositoryAndTag}";

    [Fact]
    public async Task SkopeoAndPodmanPullTheUpstreamImageThroughTheMirror()
    {
        Assert.Equal(upstreamImage.ManifestDigest, await UpstreamDigestAsync("team/app", "v1"));

        // skopeo inspect: no --tls-verify flag, the mirror's insecure=true in registries.conf is what allows plain HTTP.
        var inspected = JsonNode.Parse((await skopeo.RunAsync("inspect", "--no-tags", Mirrored("team/app:v1"))).StandardOutput)!;
        Assert.Equal(upstreamImage.ManifestDigest, (string?)inspected["Digest"]);
        Assert.Equal(upstreamImage.LayerDigests, inspected["Layers"]!.AsArray().Select(l => (string)l!).ToList());
        Assert.Equal(["E2E_SEED=1101"], inspected["Env"]!.AsArray().Select(e => (string)e!).ToList());

        // skopeo copy out of the mirror: manifest and every blob byte-identical to what the upstream was given.
        var pulled = new OciImageLayout(fixture.Sandbox.Folder($"pulled-{Guid.NewGuid():N}"));
        var digestFile = fixture.Sandbox.FilePath($"pulled-{Guid.NewGuid():N}.digest");
        await skopeo.RunAsync("copy", "--preserve-digests", "--digestfile", digestFile, Mirrored("team/app:v1"), $"oci:{pulled.Root}:pulled");
        Assert.Equal(upstreamImage.ManifestDigest, File.ReadAllText(digestFile).Trim());
        var copied = pulled.ReadImage("pulled");
        Assert.Equal(upstreamImage.Manifest, copied.Manifest);
        foreach (var digest in upstreamImage.AllDigests)
        {
            AssertSameBytes(fixture.UpstreamLayout.ReadBlob(digest), pulled.ReadBlob(digest), $"blob {digest} pulled through the mirror");
        }

        // podman pull by tag through the mirror.
        await PodmanPullAsync("team/app:v1");
        Assert.Equal(upstreamImage.ManifestDigest, await PodmanInspectAsync("team/app:v1", "{{.Digest}}"));
        Assert.Equal(upstreamImage.ConfigDigest, "sha256:" + await PodmanInspectAsync("team/app:v1", "{{.Id}}"));

        // Deletes act on local content only: the upstream's manifest and blobs cannot be deleted through the ShadowRegistry.
        using (var deleteManifest = await SendAsync(HttpMethod.Delete, $"v2/team/app/manifests/{upstreamImage.ManifestDigest}"))
        {
            await deleteManifest.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        }
        using (var deleteBlob = await SendAsync(HttpMethod.Delete, $"v2/{Upstream}/team/app/blobs/{upstreamImage.LayerDigests[0]}"))
        {
            await deleteBlob.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
        }

        // Nothing was written to (or deleted from) the upstream, and the image still pulls through the mirror.
        await AssertUpstreamUntouchedAsync();
        Assert.Equal(upstreamImage.ManifestDigest, await MirroredDigestAsync("team/app:v1"));
    }

    [Fact]
    public async Task LocalPushShadowsTheUpstreamTagUntilTheLocalTagIsDeleted()
    {
        const string Repository = "team/shadowed";
        Assert.Equal(upstreamImage.ManifestDigest, await MirroredDigestAsync($"{Repository}:v1"));

        // Push a different image to the ShadowRegistry under the same name:tag. "team/shadowed" names no upstream, so it
        // lands in the default upstream's local repository, upstream.test/team/shadowed.
        var digestFile = fixture.Sandbox.FilePath($"pushed-{Guid.NewGuid():N}.digest");
        await skopeo.RunAsync("copy", "--dest-tls-verify=false", "--digestfile", digestFile, $"oci:{fixture.LocalLayout.Root}:v1", Shadow($"{Repository}:v1"));
        Assert.Equal(localImage.ManifestDigest, File.ReadAllText(digestFile).Trim());

        // The same pull now returns the local image, with skopeo and with podman.
        Assert.Equal(localImage.ManifestDigest, await MirroredDigestAsync($"{Repository}:v1"));
        await PodmanPullAsync($"{Repository}:v1");
        Assert.Equal(localImage.ManifestDigest, await PodmanInspectAsync($"{Repository}:v1", "{{.Digest}}"));
        Assert.Equal(localImage.ConfigDigest, "sha256:" + await PodmanInspectAsync($"{Repository}:v1", "{{.Id}}"));

        // The push never reached the upstream: its tag still names its own image, and the local layers are unknown there.
        await AssertUpstreamUntouchedAsync();
        foreach (var digest in localImage.LayerDigests.Append(localImage.ConfigDigest))
        {
            using var head = await fixture.UpstreamClient.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{Repository}/blobs/{digest}"));
            Assert.True(head.StatusCode == HttpStatusCode.NotFound, $"the upstream has the locally pushed blob {digest}: HEAD answered {(int)head.StatusCode}");
        }

        // Deleting the local tag uncovers the upstream image again.
        await skopeo.RunAsync("delete", "--tls-verify=false", Shadow($"{Repository}:v1"));
        Assert.Equal(upstreamImage.ManifestDigest, await MirroredDigestAsync($"{Repository}:v1"));
        await PodmanPullAsync($"{Repository}:v1");
        Assert.Equal(upstreamImage.ManifestDigest, await PodmanInspectAsync($"{Repository}:v1", "{{.Digest}}"));

        // And the delete did not reach the upstream either.
        await AssertUpstreamUntouchedAsync();
    }

    [Fact]
    public async Task NamespaceQueryPathPrefixAndDefaultFormsServeTheUpstreamManifestAndBlobs()
    {
        const string Repository = "team/forms";
        string[] forms =
        [
            $"v2/{Repository}/manifests/{{0}}?ns={Upstream}",
            $"v2/{Upstream}/{Repository}/manifests/{{0}}",
            $"v2/{Repository}/manifests/{{0}}",
        ];
        foreach (var form in forms)
        {
            foreach (var reference in new[] { "v1", upstreamImage.ManifestDigest })
            {
                var path = string.Format(form, reference);
                using var response = await SendAsync(HttpMethod.Get, path, ManifestTypes);
                await response.ExpectAsync(HttpStatusCode.OK);
                Assert.Equal(upstreamImage.ManifestDigest, response.Headers.GetValues("Docker-Content-Digest").Single());
                Assert.Equal(OciHttp.OciManifest, response.Content.Headers.ContentType?.MediaType);
                AssertSameBytes(upstreamImage.Manifest, await response.Content.ReadAsByteArrayAsync(), $"GET {path} (the upstream manifest)");

                using var head = await SendAsync(HttpMethod.Head, path, ManifestTypes);
                await head.ExpectAsync(HttpStatusCode.OK);
                Assert.Equal(upstreamImage.ManifestDigest, head.Headers.GetValues("Docker-Content-Digest").Single());
                Assert.Equal(upstreamImage.Manifest.Length, head.Content.Headers.ContentLength);
            }
        }

        string[] blobForms = [$"v2/{Repository}/blobs/{{0}}?ns={Upstream}", $"v2/{Upstream}/{Repository}/blobs/{{0}}", $"v2/{Repository}/blobs/{{0}}"];
        foreach (var form in blobForms)
        {
            foreach (var digest in upstreamImage.LayerDigests.Append(upstreamImage.ConfigDigest))
            {
                var path = string.Format(form, digest);
                using var response = await SendAsync(HttpMethod.Get, path);
                await response.ExpectAsync(HttpStatusCode.OK);
                AssertSameBytes(fixture.UpstreamLayout.ReadBlob(digest), await response.Content.ReadAsByteArrayAsync(), $"GET {path}");

                using var head = await SendAsync(HttpMethod.Head, path);
                await head.ExpectAsync(HttpStatusCode.OK);
                Assert.Equal(fixture.UpstreamLayout.ReadBlob(digest).Length, head.Content.Headers.ContentLength);
            }

            // A blob the upstream lacks is unknown, in every form.
            var missing = string.Format(form, OciHttp.Sha256(OciHttp.RandomBytes(64, 99)));
            using var absent = await SendAsync(HttpMethod.Get, missing);
            await absent.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
        }

        // An ns that is no configured upstream has nothing to fall through to.
        using var unknownNamespace = await SendAsync(HttpMethod.Get, $"v2/{Repository}/manifests/v1?ns=other.test", ManifestTypes);
        await unknownNamespace.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
    }

    [Fact]
    public async Task TagListMergesLocalAndUpstreamTagsInEveryForm()
    {
        const string Repository = "team/tags";
        Assert.Equal(["v1", "v2"], await UpstreamTagsAsync(Repository));

        // v3 only locally (default form); v1 pushed locally through the path-prefix form shadows the upstream's v1.
        await skopeo.RunAsync("copy", "--dest-tls-verify=false", $"oci:{fixture.LocalLayout.Root}:v1", Shadow($"{Repository}:v3"));
        await skopeo.RunAsync("copy", "--dest-tls-verify=false", $"oci:{fixture.LocalLayout.Root}:v1", Shadow($"{Upstream}/{Repository}:v1"));

        foreach (var (path, name) in new[]
                 {
                     ($"v2/{Repository}/tags/list?ns={Upstream}", Repository),
                     ($"v2/{Upstream}/{Repository}/tags/list", $"{Upstream}/{Repository}"),
                     ($"v2/{Repository}/tags/list", Repository),
                 })
        {
            using var response = await SendAsync(HttpMethod.Get, path);
            await response.ExpectAsync(HttpStatusCode.OK);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal(name, (string?)body["name"]);
            Assert.Equal(["v1", "v2", "v3"], body["tags"]!.AsArray().Select(t => (string)t!).ToList());
        }

        // Every form sees the same local repository: v1 and v3 are the local image, v2 still the upstream's.
        foreach (var prefix in new[] { $"v2/{Repository}/manifests/{{0}}?ns={Upstream}", $"v2/{Upstream}/{Repository}/manifests/{{0}}", $"v2/{Repository}/manifests/{{0}}" })
        {
            foreach (var (tag, expected) in new[] { ("v1", localImage.ManifestDigest), ("v3", localImage.ManifestDigest), ("v2", upstreamImage.ManifestDigest) })
            {
                using var response = await SendAsync(HttpMethod.Get, string.Format(prefix, tag), ManifestTypes);
                await response.ExpectAsync(HttpStatusCode.OK);
                Assert.Equal(expected, response.Headers.GetValues("Docker-Content-Digest").Single());
            }
        }
        Assert.Equal(localImage.ManifestDigest, await MirroredDigestAsync($"{Repository}:v1"));
        Assert.Equal(upstreamImage.ManifestDigest, await MirroredDigestAsync($"{Repository}:v2"));

        // A repository only pushed locally lists its local tags alone.
        await skopeo.RunAsync("copy", "--dest-tls-verify=false", $"oci:{fixture.LocalLayout.Root}:v1", Shadow("team/local-only:only"));
        using (var localOnly = await SendAsync(HttpMethod.Get, "v2/team/local-only/tags/list"))
        {
            await localOnly.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(["only"], JsonNode.Parse(await localOnly.Content.ReadAsStringAsync())!["tags"]!.AsArray().Select(t => (string)t!).ToList());
        }

        // The upstream's tags, manifests and catalog are what they were before these pushes.
        await AssertUpstreamUntouchedAsync();
    }

    /// <summary>
    /// The upstream still holds exactly what the fixture put there: the seeded repositories, each v1 = the upstream image,
    /// and team/tags with v1 and v2 only.
    /// </summary>
    private async Task AssertUpstreamUntouchedAsync()
    {
        using (var catalog = await fixture.UpstreamClient.GetAsync("v2/_catalog"))
        {
            await catalog.ExpectAsync(HttpStatusCode.OK);
            var repositories = JsonNode.Parse(await catalog.Content.ReadAsStringAsync())!["repositories"]!.AsArray().Select(r => (string)r!).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(ShadowingEndToEndFixture.SeededRepositories, repositories);
        }
        foreach (var repository in ShadowingEndToEndFixture.SeededRepositories)
        {
            string[] tags = repository == "team/tags" ? ["v1", "v2"] : ["v1"];
            Assert.Equal(tags, await UpstreamTagsAsync(repository));
            Assert.Equal(upstreamImage.ManifestDigest, await UpstreamDigestAsync(repository, "v1"));
        }
    }

    private async Task<List<string>> UpstreamTagsAsync(string repository)
    {
        using var response = await fixture.UpstreamClient.GetAsync($"v2/{repository}/tags/list");
        await response.ExpectAsync(HttpStatusCode.OK);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["tags"]!.AsArray().Select(t => (string)t!).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The manifest digest the upstream itself serves for a tag.</summary>
    private async Task<string> UpstreamDigestAsync(string repository, string tag)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{tag}");
        foreach (var type in ManifestTypes)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }
        using var response = await fixture.UpstreamClient.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
        var digest = response.Headers.GetValues("Docker-Content-Digest").Single();
        Assert.Equal(digest, OciHttp.Sha256(await response.Content.ReadAsByteArrayAsync()));
        return digest;
    }

    /// <summary>The digest skopeo sees for upstream.test/REPO:TAG, i.e. through the mirror.</summary>
    private async Task<string> MirroredDigestAsync(string repositoryAndTag)
    {
        var raw = await skopeo.RunAsync("inspect", "--raw", Mirrored(repositoryAndTag));
        var inspected = JsonNode.Parse((await skopeo.RunAsync("inspect", "--no-tags", Mirrored(repositoryAndTag))).StandardOutput)!;
        var digest = (string)inspected["Digest"]!;
        Assert.Equal(digest, OciHttp.Sha256(System.Text.Encoding.UTF8.GetBytes(raw.StandardOutput)));
        return digest;
    }

    private async Task PodmanPullAsync(string repositoryAndTag) =>
        await podman.RunAsync("pull", "--signature-policy", fixture.Sandbox.PolicyPath, $"{Upstream}/{repositoryAndTag}");

    private async Task<string> PodmanInspectAsync(string repositoryAndTag, string format) =>
        (await podman.RunAsync("image", "inspect", "--format", format, $"{Upstream}/{repositoryAndTag}")).StandardOutput.Trim();

    private Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, params string[] accept)
    {
        var request = new HttpRequestMessage(method, path);
        foreach (var type in accept)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }
        return client.SendAsync(request);
    }

    /// <summary>Byte equality with a short message (Assert.Equal would print megabytes).</summary>
    private static void AssertSameBytes(byte[] expected, byte[] actual, string what) =>
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{what}: {actual.Length} bytes (sha256 {OciHttp.Sha256(actual)}) differ from the expected {expected.Length} bytes (sha256 {OciHttp.Sha256(expected)})");
}
