using System.Formats.Tar;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// One gate world: a real upstream (Debian's docker-registry) holding <c>library/app:latest</c> and
/// <c>library/app:stable</c> (the same image, <see cref="Upstream"/>), a ShadowRegistry whose default <c>docker.io</c>
/// upstream it is, a tool sandbox, and two more images (<see cref="ImageA"/>, <see cref="ImageB"/>) as OCI layouts
/// tagged "latest", for the changes to push. Everything is disposed with it.
/// </summary>
internal sealed class GateWorld : IAsyncDisposable
{
    public const string Repository = "library/app";

    /// <summary>The repository's local name in the base namespace and in every overlay (what the changes API lists).</summary>
    public const string LocalRepository = "docker.io/library/app";

    private GateWorld(ContainerToolSandbox sandbox, UpstreamDistribution upstream, RegistryServer server)
    {
        Sandbox = sandbox;
        UpstreamRegistry = upstream;
        Server = server;
        Client = server.CreateClient();
    }

    public ContainerToolSandbox Sandbox { get; }

    public UpstreamDistribution UpstreamRegistry { get; }

    public RegistryServer Server { get; }

    public HttpClient Client { get; }

    public OciLayoutImage Upstream { get; private set; } = null!;

    public OciImageLayout LayoutA { get; private set; } = null!;

    public OciLayoutImage ImageA { get; private set; } = null!;

    public OciImageLayout LayoutB { get; private set; } = null!;

    public OciLayoutImage ImageB { get; private set; } = null!;

    public static async Task<GateWorld> StartAsync(ITestOutputHelper output, Action<IServiceCollection>? services = null, params string[] serverArguments)
    {
        ExternalTool.Require("skopeo");
        ExternalTool.Require("docker-registry");
        var sandbox = new ContainerToolSandbox("changes");
        UpstreamDistribution? upstream = null;
        try
        {
            var (upstreamLayout, upstreamImage) = OciImageLayout.WriteRandomImage(sandbox.Folder("upstream-image"), "latest", seed: 7001, 96 << 10, 64 << 10);
            upstream = await UpstreamDistribution.StartAsync(output);
            var skopeo = sandbox.Skopeo(output);
            foreach (var tag in new[] { "latest", "stable" })
            {
                await skopeo.RunAsync("copy", "--dest-tls-verify=false", $"oci:{upstreamLayout.Root}:latest", $"docker://{upstream.HostPort}/{Repository}:{tag}");
            }
            var server = await RegistryServer.StartAsync(services,
            [
                "--Shadow:Upstreams:docker.io:Url", upstream.BaseAddress.ToString(),
                "--Shadow:Upstreams:docker.io:Default", "true",
                .. serverArguments,
            ]);
            var world = new GateWorld(sandbox, upstream, server) { Upstream = upstreamImage };
            (world.LayoutA, world.ImageA) = OciImageLayout.WriteRandomImage(sandbox.Folder("image-a"), "latest", seed: 7002, 80 << 10, 48 << 10);
            (world.LayoutB, world.ImageB) = OciImageLayout.WriteRandomImage(sandbox.Folder("image-b"), "latest", seed: 7003, 72 << 10);
            Assert.Equal(3, new[] { upstreamImage.ManifestDigest, world.ImageA.ManifestDigest, world.ImageB.ManifestDigest }.Distinct().Count());
            return world;
        }
        catch (Exception)
        {
            if (upstream is not null) await upstream.DisposeAsync();
            await sandbox.DisposeAsync();
            throw;
        }
    }

    /// <summary>PUT /api/v1/changes/ID; the answer's status must be <paramref name="expected"/>.</summary>
    public async Task<JsonObject> PutChangeAsync(string id, HttpStatusCode expected, string[]? ahead = null, string? ttl = null)
    {
        var body = new JsonObject();
        if (ahead is not null) body["ahead"] = new JsonArray(ahead.Select(a => (JsonNode)JsonValue.Create(a)).ToArray());
        if (ttl is not null) body["ttl"] = ttl;
        using var response = await Client.PutAsync($"api/v1/changes/{id}", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        await response.ExpectAsync(expected);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    /// <summary>
    /// The digest a GET of the manifest answers with through <paramref name="prefix"/> ("" for the base,
    /// "changes/ID/" for a view), and the ShadowRegistry-Source header naming the layer that answered.
    /// </summary>
    public async Task<(string Digest, string Source)> ManifestAsync(string prefix, string tag)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{prefix}{LocalRepository}/manifests/{tag}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.DockerManifest));
        using var response = await Client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
        var digest = OciHttp.Sha256(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        return (digest, response.Headers.TryGetValues("ShadowRegistry-Source", out var source) ? source.Single() : "(no ShadowRegistry-Source header)");
    }

    /// <summary>
    /// <c>ShadowRegistry changes ARGS</c> (in process) against this registry, as SHADOWREGISTRY_URL gives it; the exit
    /// code and what it printed on standard output.
    /// </summary>
    public async Task<(int Code, string Output)> CliAsync(params string[] args)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        var code = await ShadowRegistry.Cli.ChangesCommand.RunAsync(args, new StringReader(""), output, error,
            name => name == "SHADOWREGISTRY_URL" ? Server.BaseAddress.ToString() : null, CancellationToken.None);
        Assert.True(code is 0 or 3, $"changes {string.Join(' ', args)} exited with {code}:\n{output}\n{error}");
        return (code, output.ToString());
    }

    /// <summary>Files (not dot-temporaries) under the storage root's blobs/: each one is a blob's bytes on disk.</summary>
    public SortedSet<string> BlobFiles()
    {
        var root = Path.Combine(Server.StorageRoot, "blobs");
        return Directory.Exists(root)
            ? new(Directory.GetFiles(root, "*", SearchOption.AllDirectories).Where(path => !Path.GetFileName(path).StartsWith('.')), StringComparer.Ordinal)
            : new(StringComparer.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        await UpstreamRegistry.DisposeAsync();
        await Sandbox.DisposeAsync();
    }
}

/// <summary>
/// Speculative changes with real clients against a real upstream (issue 10's acceptance): changes A, B (A ahead of it)
/// and C (nothing ahead) on a ShadowRegistry whose default docker.io upstream is Debian's docker-registry holding
/// library/app. skopeo pushes through the path form /v2/changes/ID/docker.io/..., podman pulls through a registries.conf
/// mirror whose location carries the view's path, containerd's ctr through a hosts.toml host with override_path, and
/// Docker through registry-mirrors with the host form ID.changes.localhost.
/// </summary>
public sealed class SpeculativeChangesEndToEndTests(ITestOutputHelper output)
{
    private const string Image = "docker.io/library/app";

    [EndToEndFact(false, "skopeo", "podman", "docker-registry")]
    public async Task SkopeoAndPodmanSeeEachChangeThroughItsViewAndPromotionWritesTheBaseByMetadataAlone()
    {
        ExternalTool.Require("podman");
        await using var world = await GateWorld.StartAsync(output);
        var skopeo = world.Sandbox.Skopeo(output);
        var podman = world.Sandbox.Podman(output);
        var registry = world.Server.HostPort;
        var upstream = world.Upstream.ManifestDigest;
        var (a, b) = (world.ImageA.ManifestDigest, world.ImageB.ManifestDigest);

        // A and C by the API, B (A ahead of it) by the CLI a CI script would use.
        await world.PutChangeAsync("a", HttpStatusCode.Created);
        var (code, printed) = await world.CliAsync("create", "b", "--ahead", "a", "--ttl", "6h", "--label", "project=app");
        Assert.Equal(0, code);
        var described = JsonNode.Parse(printed)!;
        Assert.Equal(["a"], described["ahead"]!.AsArray().Select(id => (string)id!));
        Assert.Equal("/v2/changes/b/", (string?)described["view"]!["path"]);
        await world.PutChangeAsync("c", HttpStatusCode.Created);

        // Before any push every view, and the base, sees the upstream's image.
        foreach (var prefix in new[] { "", "changes/a/", "changes/b/", "changes/c/" })
            Assert.Equal((upstream, "upstream/docker.io"), await world.ManifestAsync(prefix, "latest"));

        // The job of change A pushes its build (both tags) through A's view, by the path form.
        foreach (var tag in new[] { "latest", "stable" })
            Assert.Equal(a, await SkopeoCopyAsync(skopeo, $"oci:{world.LayoutA.Root}:latest", $"docker://{registry}/changes/a/{Image}:{tag}"));

        // B (A ahead of it) pulls A's image with the same digest: skopeo by the path form, podman through a mirror with a path.
        Assert.Equal(a, await SkopeoDigestAsync(skopeo, $"docker://{registry}/changes/b/{Image}:latest"));
        Assert.Equal((a, "change/a"), await world.ManifestAsync("changes/b/", "latest"));
        Assert.Equal(world.ImageA.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/changes/b/docker.io", "latest", a));

        // C (beside A) and the base do not see it: they get the upstream's image.
        Assert.Equal(upstream, await SkopeoDigestAsync(skopeo, $"docker://{registry}/changes/c/{Image}:latest"));
        Assert.Equal(upstream, await SkopeoDigestAsync(skopeo, $"docker://{registry}/{Image}:latest"));
        Assert.Equal((upstream, "upstream/docker.io"), await world.ManifestAsync("changes/c/", "latest"));
        Assert.Equal(world.Upstream.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/changes/c/docker.io", "latest", upstream));
        Assert.Equal(world.Upstream.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/docker.io", "latest", upstream));
        Assert.Equal(world.Upstream.ConfigDigest, await PodmanPullThroughAsync(world, podman, registry, "latest", upstream));

        // B's own push of the same tag wins in B and is invisible to A.
        Assert.Equal(b, await SkopeoCopyAsync(skopeo, $"oci:{world.LayoutB.Root}:latest", $"docker://{registry}/changes/b/{Image}:latest"));
        Assert.Equal(world.ImageB.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/changes/b/docker.io", "latest", b));
        Assert.Equal((b, "change/b"), await world.ManifestAsync("changes/b/", "latest"));
        Assert.Equal((a, "change/a"), await world.ManifestAsync("changes/a/", "latest"));
        Assert.Equal(a, await SkopeoDigestAsync(skopeo, $"docker://{registry}/changes/a/{Image}:latest"));
        Assert.Equal((a, "change/a"), await world.ManifestAsync("changes/b/", "stable"));

        // Deleting A: B keeps its own tag and falls back to the upstream for the one it had from A.
        using (var deleted = await world.Client.DeleteAsync("api/v1/changes/a")) await deleted.ExpectAsync(HttpStatusCode.NoContent);
        Assert.Equal(world.Upstream.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/changes/b/docker.io", "stable", upstream));
        Assert.Equal((upstream, "upstream/docker.io"), await world.ManifestAsync("changes/b/", "stable"));
        Assert.Equal((b, "change/b"), await world.ManifestAsync("changes/b/", "latest"));
        var skipped = (await world.Client.GetFromJsonAsync<JsonObject>("api/v1/changes/b"))!["skipped"]!.AsArray();
        Assert.Equal("a", (string?)skipped.Single()!["id"]);
        var gone = await skopeo.TryRunAsync("inspect", "--raw", "--tls-verify=false", $"docker://{registry}/changes/a/{Image}:latest");
        Assert.False(gone.Succeeded, "a deleted change's view still answers");

        // Promotion of B: a wrong expectation (the upstream's digest: the base has no local tag yet) is 409 and changes nothing.
        var blobsBefore = world.BlobFiles();
        Assert.NotEmpty(blobsBefore);
        using (var refused = await world.Client.PostAsJsonAsync("api/v1/changes/b/promote",
                   new { expect = new Dictionary<string, string?> { [$"{GateWorld.LocalRepository}:latest"] = upstream } }))
        {
            await refused.ExpectErrorAsync(HttpStatusCode.Conflict, "CHANGE_CONFLICT");
            var mismatch = (await refused.Content.ReadFromJsonAsync<JsonObject>())!["errors"]![0]!["detail"]!["mismatches"]!.AsArray().Single()!;
            Assert.Equal(upstream, (string?)mismatch["expected"]);
            Assert.Null((string?)mismatch["actual"]);
        }
        Assert.Equal(3, (await world.CliAsync("promote", "b", "--expect", $"{GateWorld.LocalRepository}:latest={upstream}")).Code);
        Assert.Equal((upstream, "upstream/docker.io"), await world.ManifestAsync("", "latest"));
        Assert.Equal(blobsBefore, world.BlobFiles());

        // The right expectation (no local tag in the base: "none"): the base's tag becomes B's digest, and no blob byte is added.
        (code, printed) = await world.CliAsync("promote", "b", "--expect", $"{GateWorld.LocalRepository}:latest=none");
        Assert.Equal(0, code);
        var promoted = JsonNode.Parse(printed)!["promoted"]!.AsArray().Single()!;
        Assert.Equal(GateWorld.LocalRepository, (string?)promoted["repository"]);
        Assert.Equal(b, (string?)promoted["digest"]);
        Assert.Null((string?)promoted["previous"]);
        Assert.True((bool)promoted["changed"]!);
        Assert.Equal(blobsBefore, world.BlobFiles());
        Assert.Equal((b, "local"), await world.ManifestAsync("", "latest"));
        Assert.Equal(b, await SkopeoDigestAsync(skopeo, $"docker://{registry}/{Image}:latest"));
        Assert.Equal(world.ImageB.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/docker.io", "latest", b));
        // C now sees the promoted image from the base; the base's other tag is still the upstream's.
        Assert.Equal((b, "local"), await world.ManifestAsync("changes/c/", "latest"));
        Assert.Equal((upstream, "upstream/docker.io"), await world.ManifestAsync("", "stable"));

        // Promoting again is a no-op.
        using (var again = await world.Client.PostAsync("api/v1/changes/b/promote", null))
        {
            await again.ExpectAsync(HttpStatusCode.OK);
            var entry = (await again.Content.ReadFromJsonAsync<JsonObject>())!["promoted"]!.AsArray().Single()!;
            Assert.False((bool)entry["changed"]!);
            Assert.Equal(b, (string?)entry["previous"]);
        }
        Assert.Equal(blobsBefore, world.BlobFiles());
        Assert.Equal((b, "local"), await world.ManifestAsync("", "latest"));

        // Nothing ever reached the upstream: it still holds its own image under both tags.
        Assert.Equal(upstream, await SkopeoDigestAsync(skopeo, $"docker://{world.UpstreamRegistry.HostPort}/{GateWorld.Repository}:latest"));
        Assert.Equal(upstream, await SkopeoDigestAsync(skopeo, $"docker://{world.UpstreamRegistry.HostPort}/{GateWorld.Repository}:stable"));
    }

    [EndToEndFact(false, "skopeo", "podman", "docker-registry")]
    public async Task AChangeWithAShortTtlExpiresForEveryClient()
    {
        ExternalTool.Require("podman");
        // The registry's clock is a fake one, advanced by the test: no sleeping for a TTL to pass.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await GateWorld.StartAsync(output, services => services.AddSingleton<TimeProvider>(clock),
            "--Changes:CleanupInterval", "00:05:00");
        var skopeo = world.Sandbox.Skopeo(output);
        var podman = world.Sandbox.Podman(output);
        var registry = world.Server.HostPort;

        var created = await world.PutChangeAsync("short", HttpStatusCode.Created, ttl: "2m");
        Assert.Equal(clock.GetUtcNow().AddMinutes(2), DateTimeOffset.Parse((string)created["expiresAt"]!), TimeSpan.FromSeconds(1));
        await world.PutChangeAsync("behind", HttpStatusCode.Created, ahead: ["short"], ttl: "1h");
        Assert.Equal(world.ImageA.ManifestDigest, await SkopeoCopyAsync(skopeo, $"oci:{world.LayoutA.Root}:latest", $"docker://{registry}/changes/short/{Image}:latest"));
        Assert.Equal(world.ImageA.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/changes/behind/docker.io", "latest", world.ImageA.ManifestDigest));

        // Expired, but not yet cleaned up (the clean-up runs every 5 minutes of the fake clock, the first time at 5 minutes).
        clock.Advance(TimeSpan.FromMinutes(2));

        // The expired change's view is gone for skopeo (the registry says why), and the API no longer lists it.
        var expired = await skopeo.TryRunAsync("inspect", "--raw", "--tls-verify=false", $"docker://{registry}/changes/short/{Image}:latest");
        Assert.False(expired.Succeeded, $"the expired change's view still answers:\n{expired.Describe()}");
        Assert.Contains("expired", expired.StandardError);
        using (var shown = await world.Client.GetAsync("api/v1/changes/short")) await shown.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        var listed = (await world.Client.GetFromJsonAsync<JsonObject>("api/v1/changes"))!["changes"]!.AsArray();
        Assert.Equal(["behind"], listed.Select(c => (string)c!["id"]!));
        Assert.Equal("expired", (string?)listed[0]!["skipped"]![0]!["reason"]);

        // The change behind it is skipped past it, to the upstream, by podman's mirror as by the API.
        Assert.Equal(world.Upstream.ConfigDigest, await PodmanPullThroughAsync(world, podman, $"{registry}/changes/behind/docker.io", "latest", world.Upstream.ManifestDigest));
        Assert.Equal((world.Upstream.ManifestDigest, "upstream/docker.io"), await world.ManifestAsync("changes/behind/", "latest"));

        // After the clean-up (which removes the overlay and forgets the change) the view stays gone; the change behind still resolves.
        clock.Advance(TimeSpan.FromMinutes(5));
        var cleaned = await skopeo.TryRunAsync("inspect", "--raw", "--tls-verify=false", $"docker://{registry}/changes/short/{Image}:latest");
        Assert.False(cleaned.Succeeded, $"the expired change's view answers after the clean-up:\n{cleaned.Describe()}");
        Assert.Contains("name unknown", cleaned.StandardError);
        Assert.Equal(world.Upstream.ManifestDigest, await SkopeoDigestAsync(skopeo, $"docker://{registry}/changes/behind/{Image}:latest"));
    }

    [EndToEndFact(true, "containerd", "ctr", "skopeo", "docker-registry")]
    public async Task ContainerdPullsAndPushesThroughAViewWithHostsTomlOverridePath()
    {
        ContainerdDaemon.Require();
        await using var world = await GateWorld.StartAsync(output);
        var skopeo = world.Sandbox.Skopeo(output);
        var registry = world.Server.HostPort;
        await world.PutChangeAsync("a", HttpStatusCode.Created);
        await world.PutChangeAsync("b", HttpStatusCode.Created, ahead: ["a"]);
        await world.PutChangeAsync("c", HttpStatusCode.Created);
        Assert.Equal(world.ImageA.ManifestDigest, await SkopeoCopyAsync(skopeo, $"oci:{world.LayoutA.Root}:latest", $"docker://{registry}/changes/a/{Image}:latest"));

        await using var daemon = await ContainerdDaemon.StartAsync(output);
        var ctr = daemon.Ctr(output);
        var reference = $"{Image}:latest";

        // B's view as docker.io's host: containerd asks http://REGISTRY/v2/changes/b/library/app/...?ns=docker.io.
        var hostsB = HostsDir(daemon, "hosts-b", $"http://{registry}/v2/changes/b");
        await ctr.RunAsync("images", "pull", "--hosts-dir", hostsB, reference);
        Assert.Contains(world.ImageA.ManifestDigest, await CtrListAsync(ctr, reference));
        await ctr.RunAsync("images", "check", $"name=={reference}");

        // C's view: the upstream's image.
        await ctr.RunAsync("images", "rm", "--sync", reference);
        await ctr.RunAsync("content", "prune", "references");
        var hostsC = HostsDir(daemon, "hosts-c", $"http://{registry}/v2/changes/c");
        await ctr.RunAsync("images", "pull", "--hosts-dir", hostsC, reference);
        Assert.Contains(world.Upstream.ManifestDigest, await CtrListAsync(ctr, reference));

        // ctr pushes B's own build through B's view (the "push" capability of the same host): it lands in B's overlay only.
        await ctr.RunAsync("images", "rm", "--sync", reference);
        var archive = daemon.Scratch.FilePath("image-b.tar");
        await TarFile.CreateFromDirectoryAsync(world.LayoutB.Root, archive, includeBaseDirectory: false);
        await ctr.RunAsync("images", "import", "--base-name", Image, archive);
        Assert.Contains(world.ImageB.ManifestDigest, await CtrListAsync(ctr, reference));
        await ctr.RunAsync("images", "push", "--hosts-dir", hostsB, reference);
        Assert.Equal((world.ImageB.ManifestDigest, "change/b"), await world.ManifestAsync("changes/b/", "latest"));
        Assert.Equal((world.ImageA.ManifestDigest, "change/a"), await world.ManifestAsync("changes/a/", "latest"));
        Assert.Equal((world.Upstream.ManifestDigest, "upstream/docker.io"), await world.ManifestAsync("", "latest"));
        var tags = (await world.Client.GetFromJsonAsync<JsonObject>("api/v1/changes/b"))!["tags"]!.AsArray().Single()!;
        Assert.Equal((GateWorld.LocalRepository, "latest", world.ImageB.ManifestDigest), ((string?)tags["repository"], (string?)tags["tag"], (string?)tags["digest"]));

        // And pulls it back through B, from nothing.
        await ctr.RunAsync("images", "rm", "--sync", reference);
        await ctr.RunAsync("content", "prune", "references");
        await ctr.RunAsync("images", "pull", "--hosts-dir", hostsB, reference);
        Assert.Contains(world.ImageB.ManifestDigest, await CtrListAsync(ctr, reference));
        await ctr.RunAsync("images", "check", $"name=={reference}");
    }

    [EndToEndFact(true, "dockerd", "docker", "containerd", "unshare", "skopeo", "docker-registry")]
    public async Task DockerPullsAndPushesThroughAViewByItsHostName()
    {
        DockerDaemon.Require();
        ExternalTool.Require("unshare");
        await using var world = await GateWorld.StartAsync(output, null, "--Changes:HostSuffix", "changes.localhost");
        var skopeo = world.Sandbox.Skopeo(output);
        var port = world.Server.BaseAddress.Port;
        await world.PutChangeAsync("a", HttpStatusCode.Created);
        var described = await world.PutChangeAsync("b", HttpStatusCode.Created, ahead: ["a"]);
        Assert.Equal("b.changes.localhost", (string?)described["view"]!["host"]);
        Assert.Equal(world.ImageA.ManifestDigest, await SkopeoCopyAsync(skopeo, $"oci:{world.LayoutA.Root}:latest", $"docker://{world.Server.HostPort}/changes/a/{Image}:latest"));

        // Docker's registry-mirrors cannot carry a path: B's view by its host name, which dockerd alone resolves to 127.0.0.1.
        var viewHost = $"b.changes.localhost:{port}";
        await using var daemon = await DockerDaemon.StartAsync(new DockerDaemonSettings
        {
            RegistryMirrors = [$"http://{viewHost}"],
            InsecureRegistries = [viewHost],
            LoopbackNames = ["b.changes.localhost"],
        }, output);
        var docker = daemon.Docker(output);

        // A Docker Hub name: dockerd asks the mirror (B's view) for library/app and gets A's image, which only A's overlay holds.
        await docker.RunAsync("pull", "app:latest");
        Assert.Equal(world.ImageA.ConfigDigest, await DockerInspectAsync(docker, "app:latest", "{{.Id}}"));
        Assert.Contains($"app@{world.ImageA.ManifestDigest}", await DockerInspectAsync(docker, "app:latest", "{{json .RepoDigests}}"));

        // A push by the host form lands in B's overlay only (mirrors are for pulls; a push names the view's host).
        await docker.RunAsync("tag", "app:latest", $"{viewHost}/library/app:docker");
        var push = await docker.RunAsync("push", $"{viewHost}/library/app:docker");
        var pushed = System.Text.RegularExpressions.Regex.Match(push.StandardOutput, @"docker: digest: (?<digest>sha256:[0-9a-f]{64})").Groups["digest"].Value;
        Assert.Equal((pushed, "change/b"), await world.ManifestAsync("changes/b/", "docker"));
        using (var notInA = await world.Client.GetAsync($"v2/changes/a/{GateWorld.LocalRepository}/manifests/docker")) await notInA.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using (var notInBase = await world.Client.GetAsync($"v2/{GateWorld.LocalRepository}/manifests/docker")) await notInBase.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // After A is deleted, the same pull through the same mirror gets the upstream's image.
        using (var deleted = await world.Client.DeleteAsync("api/v1/changes/a")) await deleted.ExpectAsync(HttpStatusCode.NoContent);
        await docker.RunAsync("rmi", "app:latest", $"{viewHost}/library/app:docker");
        await docker.RunAsync("pull", "app:latest");
        Assert.Equal(world.Upstream.ConfigDigest, await DockerInspectAsync(docker, "app:latest", "{{.Id}}"));
        Assert.Contains($"app@{world.Upstream.ManifestDigest}", await DockerInspectAsync(docker, "app:latest", "{{json .RepoDigests}}"));
    }

    private static async Task<string> DockerInspectAsync(ExternalTool docker, string image, string format) =>
        (await docker.RunAsync("image", "inspect", "--format", format, image)).StandardOutput.Trim();

    /// <summary>
    /// A hosts folder for ctr --hosts-dir whose docker.io/hosts.toml sends docker.io to <paramref name="view"/> only,
    /// by its path (override_path): containerd then takes the host URL's path as the registry's /v2.
    /// </summary>
    private static string HostsDir(ContainerdDaemon daemon, string name, string view)
    {
        var folder = daemon.Scratch.Folder(name);
        File.WriteAllText(Path.Combine(daemon.Scratch.Folder(name, "docker.io"), "hosts.toml"), $"""
            server = "https://registry-1.docker.io"

            [host."{view}"]
              capabilities = ["pull", "resolve", "push"]
              override_path = true
            """);
        return folder;
    }

    /// <summary>ctr's image list lines for <paramref name="reference"/> (name, type, digest, size, platforms).</summary>
    private static async Task<string> CtrListAsync(ExternalTool ctr, string reference) =>
        (await ctr.RunAsync("images", "ls", $"name=={reference}")).StandardOutput;

    /// <summary>skopeo copy to a registry over plain HTTP; the pushed manifest's digest.</summary>
    private static async Task<string> SkopeoCopyAsync(ExternalTool skopeo, string source, string destination)
    {
        var digestFile = Path.Combine(Path.GetTempPath(), $"shadowregistry-digest-{Guid.NewGuid():N}");
        try
        {
            await skopeo.RunAsync("copy", "--dest-tls-verify=false", "--digestfile", digestFile, source, destination);
            return File.ReadAllText(digestFile).Trim();
        }
        finally
        {
            File.Delete(digestFile);
        }
    }

    /// <summary>The digest of the manifest skopeo reads for <paramref name="reference"/> (checked against its bytes).</summary>
    private static async Task<string> SkopeoDigestAsync(ExternalTool skopeo, string reference)
    {
        var raw = await skopeo.RunAsync("inspect", "--raw", "--tls-verify=false", reference);
        return OciHttp.Sha256(Encoding.UTF8.GetBytes(raw.StandardOutput));
    }

    /// <summary>
    /// Points the sandbox's registries.conf at <paramref name="mirror"/> as docker.io's only mirror (a location with a
    /// path: the view), pulls docker.io/library/app:TAG with podman, and returns the pulled image's config digest after
    /// checking its manifest digest. docker.io itself is never reached: the pull succeeds only through the mirror.
    /// </summary>
    private static async Task<string> PodmanPullThroughAsync(GateWorld world, ExternalTool podman, string mirror, string tag, string expectedDigest)
    {
        world.Sandbox.UseMirror("docker.io", mirror);
        var reference = $"{Image}:{tag}";
        await podman.RunAsync("pull", "--signature-policy", world.Sandbox.PolicyPath, reference);
        Assert.Equal(expectedDigest, (await podman.RunAsync("image", "inspect", "--format", "{{.Digest}}", reference)).StandardOutput.Trim());
        return "sha256:" + (await podman.RunAsync("image", "inspect", "--format", "{{.Id}}", reference)).StandardOutput.Trim();
    }
}
