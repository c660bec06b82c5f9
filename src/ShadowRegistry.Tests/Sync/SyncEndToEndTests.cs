using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using ShadowRegistry.Cli;
using ShadowRegistry.Sync;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Sync;

/// <summary>
/// A test that needs skopeo and Debian's docker-registry (CNCF distribution). Skipped, with the reason, where either is
/// missing; never skipped under CI=true, where it then fails saying why.
/// </summary>
public sealed class SyncToolsFactAttribute : FactAttribute
{
    public SyncToolsFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && SyncEndToEndFixture.Unavailable() is { } reason) Skip = $"Skipped: {reason}.";
    }
}

/// <inheritdoc cref="SyncToolsFactAttribute"/>
public sealed class SyncToolsTheoryAttribute : TheoryAttribute
{
    public SyncToolsTheoryAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && SyncEndToEndFixture.Unavailable() is { } reason) Skip = $"Skipped: {reason}.";
    }
}

/// <summary>
/// Two real CNCF distribution registries (delete enabled), two of ours, a change on the first of ours, and four images
/// built offline as OCI layouts (three single images and a two-platform index) for skopeo to push.
/// </summary>
public sealed class SyncEndToEndFixture : IAsyncLifetime
{
    public const string ChangeId = "sync-e2e";

    public UpstreamDistribution Distribution1 { get; private set; } = null!;
    public UpstreamDistribution Distribution2 { get; private set; } = null!;
    public RegistryServer Shadow1 { get; private set; } = null!;
    public RegistryServer Shadow2 { get; private set; } = null!;
    public ContainerToolSandbox Sandbox { get; private set; } = null!;

    /// <summary>oci:DIR:TAG references of the images: A, B, C (single) and M (an index of two platforms).</summary>
    public IReadOnlyDictionary<string, string> Images { get; private set; } = null!;

    public static string? Unavailable()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var (tool, package) in new[] { ("skopeo", "skopeo"), ("docker-registry", "docker-registry") })
            if (!path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Any(folder => File.Exists(Path.Combine(folder, tool))))
                return $"{tool} is not installed (apt-get install -y {package}; .ci/run does it)";
        return null;
    }

    public async Task InitializeAsync()
    {
        // Skipped tests still get their fixture: start nothing where the tools are missing (and CI does not insist).
        if (Unavailable() is not null && Environment.GetEnvironmentVariable("CI") != "true") return;
        Sandbox = new ContainerToolSandbox("sync-e2e");
        var images = new Dictionary<string, string>();
        foreach (var (name, seed) in new[] { ("A", 101), ("B", 102), ("C", 103) })
        {
            var folder = Sandbox.Folder("images", name);
            OciImageLayout.WriteRandomImage(folder, "img", seed, 48 << 10, 16 << 10);
            images[name] = $"oci:{folder}:img";
        }
        images["M"] = $"oci:{WriteIndexLayout(Sandbox.Folder("images", "M"), Sandbox.Folder("images", "M-parts"))}:img";
        Images = images;
        Distribution1 = await UpstreamDistribution.StartAsync();
        Distribution2 = await UpstreamDistribution.StartAsync();
        Shadow1 = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        Shadow2 = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        using var client = Shadow1.CreateClient();
        using var created = await client.PutAsync($"api/v1/changes/{ChangeId}", JsonContent.Create(new JsonObject()));
        Assert.True(created.IsSuccessStatusCode, $"creating change {ChangeId}: {(int)created.StatusCode}");
    }

    /// <summary>An OCI layout whose "img" is an image index of two single-platform images (amd64 and arm64).</summary>
    private static string WriteIndexLayout(string root, string parts)
    {
        var descriptors = new JsonArray();
        Directory.CreateDirectory(Path.Combine(root, "blobs", "sha256"));
        foreach (var (architecture, seed) in new[] { ("amd64", 201), ("arm64", 202) })
        {
            var part = Path.Combine(parts, architecture);
            var (layout, image) = OciImageLayout.WriteRandomImage(part, "img", seed, 32 << 10);
            foreach (var digest in image.AllDigests) File.Copy(layout.BlobPath(digest), Path.Combine(root, "blobs", "sha256", digest["sha256:".Length..]), overwrite: true);
            var descriptor = OciHttp.Descriptor(OciImageLayout.ManifestMediaType, image.ManifestDigest, image.Manifest.Length);
            descriptor["platform"] = new JsonObject { ["architecture"] = architecture, ["os"] = "linux" };
            descriptors.Add(descriptor);
        }
        const string indexType = "application/vnd.oci.image.index.v1+json";
        var index = Encoding.UTF8.GetBytes(new JsonObject { ["schemaVersion"] = 2, ["mediaType"] = indexType, ["manifests"] = descriptors }.ToJsonString());
        var indexDigest = OciImageLayout.Sha256(index);
        File.WriteAllBytes(Path.Combine(root, "blobs", "sha256", indexDigest["sha256:".Length..]), index);
        File.WriteAllText(Path.Combine(root, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        var top = OciHttp.Descriptor(indexType, indexDigest, index.Length);
        top["annotations"] = new JsonObject { ["org.opencontainers.image.ref.name"] = "img" };
        File.WriteAllText(Path.Combine(root, "index.json"),
            new JsonObject { ["schemaVersion"] = 2, ["mediaType"] = indexType, ["manifests"] = new JsonArray(top) }.ToJsonString());
        return root;
    }

    public async Task DisposeAsync()
    {
        if (Distribution1 is not null) await Distribution1.DisposeAsync();
        if (Distribution2 is not null) await Distribution2.DisposeAsync();
        if (Shadow1 is not null) await Shadow1.DisposeAsync();
        if (Shadow2 is not null) await Shadow2.DisposeAsync();
        if (Sandbox is not null) await Sandbox.DisposeAsync();
    }
}

/// <summary>
/// The sync and check CLI end to end, between real CNCF distribution 2.8 registries and this one (and a change's view
/// of it), in every direction, with images pushed by skopeo: a re-pointed tag, extra tags (one sharing its manifest
/// with tags that must stay, which distribution can only delete by digest) and missing tags, a multi-platform index.
/// </summary>
public sealed class SyncEndToEndTests(SyncEndToEndFixture fixture, ITestOutputHelper output) : IClassFixture<SyncEndToEndFixture>
{
    private string HostPort(string side) => side switch
    {
        "dist1" => fixture.Distribution1.HostPort,
        "dist2" => fixture.Distribution2.HostPort,
        "shadow1" or "view1" => fixture.Shadow1.HostPort,
        "shadow2" => fixture.Shadow2.HostPort,
        _ => throw new ArgumentException(side),
    };

    /// <summary>host:port/repository on that side; a view side puts the repository under changes/&lt;id&gt;/.</summary>
    private string Repository(string side, string repository) =>
        $"{HostPort(side)}/{(side == "view1" ? $"changes/{SyncEndToEndFixture.ChangeId}/" : "")}{repository}";

    private async Task PushAsync(string image, string target)
    {
        var skopeo = fixture.Sandbox.Skopeo(output);
        await skopeo.RunAsync("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", fixture.Images[image], $"docker://{target}");
    }

    private async Task<(int Exit, string Output, string Errors)> RunAsync(bool sync, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var home = fixture.Sandbox.Folder("home");
        var exit = await SyncCommand.RunAsync(args, sync, stdout, stderr, name => name == "HOME" ? home : null, CancellationToken.None);
        output.WriteLine($"$ ShadowRegistry {(sync ? "sync" : "check")} {string.Join(' ', args)}\nexit {exit}\n{stdout}{stderr}");
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [SyncToolsTheory]
    [InlineData("dist1", "dist2")]
    [InlineData("dist1", "shadow1")]
    [InlineData("shadow1", "dist1")]
    [InlineData("shadow1", "shadow2")]
    [InlineData("shadow2", "view1")]
    [InlineData("view1", "dist2")]
    [InlineData("shadow1", "view1")]
    public async Task OneSyncFixesRepointedExtraAndMissingTagsAndTheCheckAgrees(string from, string to)
    {
        // Different names on each side: a change's view also shows its base repository of the same name.
        var source = Repository(from, $"e2e/{from}-to-{to}/source");
        var destination = Repository(to, $"e2e/{from}-to-{to}/destination");
        // Source: v1 and v1-alias on A, latest on B, multi on the index M.
        await PushAsync("A", $"{source}:v1");
        await PushAsync("A", $"{source}:v1-alias");
        await PushAsync("B", $"{source}:latest");
        await PushAsync("M", $"{source}:multi");
        // Destination: v1 equal; latest re-pointed (C); old extra on A, which v1 and (after the sync) v1-alias share;
        // stale extra on B, which latest points at once it is fixed. Deleting either by digest takes the others along.
        await PushAsync("A", $"{destination}:v1");
        await PushAsync("C", $"{destination}:latest");
        await PushAsync("A", $"{destination}:old");
        await PushAsync("B", $"{destination}:stale");

        var (src, dst) = ($"http://{source}", $"http://{destination}");
        output.WriteLine($"{from} -> {to}: {src} -> {dst}");
        var before = await RunAsync(false, src, dst);
        Assert.Equal(SyncCommand.NotInSync, before.Exit);
        foreach (var expected in new[] { ":latest mutated", ":multi missing", ":v1-alias missing", ":old extra", ":stale extra" })
            Assert.Contains(expected, before.Output);
        Assert.DoesNotContain(":v1 ", before.Output);

        var dryRun = await RunAsync(true, "--dry-run", src, dst);
        Assert.Equal(SyncCommand.InSync, dryRun.Exit);
        Assert.Contains("would delete", dryRun.Output);
        Assert.Equal(SyncCommand.NotInSync, (await RunAsync(false, src, dst)).Exit);

        var sync = await RunAsync(true, src, dst);
        Assert.True(sync.Exit == SyncCommand.InSync, sync.Output + sync.Errors);
        Assert.Contains("in sync: ", sync.Output);
        var after = await RunAsync(false, src, dst);
        Assert.Equal(SyncCommand.InSync, after.Exit);
        var again = await RunAsync(true, src, dst);
        Assert.Equal(SyncCommand.InSync, again.Exit);
        Assert.Contains("0 write(s) to the destination", again.Output);

        if (to.StartsWith("dist", StringComparison.Ordinal))
        {
            // Distribution 2.8 deletes no tags: the extra ones went by digest, and the tags sharing them were put back.
            var log = (to == "dist1" ? fixture.Distribution1 : fixture.Distribution2).Log;
            Assert.Contains($"DELETE /v2/{destination[(destination.IndexOf('/') + 1)..]}/manifests/sha256:", log);
        }

        // Exactly the source's tags, byte-identical manifests, and the index pulls whole (every platform) from there.
        await AssertSameTagsAsync(source, destination);
        var pulled = fixture.Sandbox.Folder("pulled", $"{from}-{to}");
        await fixture.Sandbox.Skopeo(output).RunAsync("copy", "--all", "--preserve-digests", "--src-tls-verify=false", $"docker://{destination}:multi", $"oci:{pulled}:multi");
    }

    [SyncToolsFact]
    public async Task ASingleTagSyncLeavesTheDestinationsOtherTagsAlone()
    {
        var source = Repository("shadow1", "e2e/single/source");
        var destination = Repository("dist2", "e2e/single/destination");
        await PushAsync("A", $"{source}:v1");
        await PushAsync("B", $"{source}:v2");
        await PushAsync("C", $"{destination}:v1");
        await PushAsync("C", $"{destination}:mine");
        var sync = await RunAsync(true, $"http://{source}:v1", $"http://{destination}");
        Assert.Equal(SyncCommand.InSync, sync.Exit);
        using var client = fixture.Distribution2.CreateClient();
        var tags = await TagsAsync(client, "e2e/single/destination");
        Assert.Equal(["mine", "v1"], tags);
        Assert.Equal(SyncCommand.Error, (await RunAsync(true, $"http://{source}:v1", $"http://{destination}:v2")).Exit);
    }

    /// <summary>
    /// Distribution deletes tags only by deleting their manifest: an extra tag on a platform manifest of an index that
    /// stays cannot go without breaking the index, so the sync reports that tag (exit 1) and the index still pulls whole.
    /// </summary>
    [SyncToolsFact]
    public async Task AnExtraTagOnAPlatformOfAKeptIndexIsReportedNotDeletedOnDistribution()
    {
        var source = Repository("shadow2", "e2e/platform/source");
        var destination = Repository("dist1", "e2e/platform/destination");
        await PushAsync("M", $"{source}:multi");
        await PushAsync("M", $"{destination}:multi");
        // Without --all skopeo copies the one platform of this machine: a tag on a child manifest of "multi".
        await fixture.Sandbox.Skopeo(output).RunAsync("copy", "--preserve-digests", "--override-arch", "amd64", "--dest-tls-verify=false",
            fixture.Images["M"], $"docker://{destination}:amd64");
        var sync = await RunAsync(true, $"http://{source}", $"http://{destination}");
        Assert.Equal(SyncCommand.NotInSync, sync.Exit);
        Assert.Contains(":amd64: the destination deletes no tags", sync.Errors);
        Assert.Contains(":amd64 extra", sync.Output);
        var pulled = fixture.Sandbox.Folder("pulled", "platform");
        await fixture.Sandbox.Skopeo(output).RunAsync("copy", "--all", "--preserve-digests", "--src-tls-verify=false", $"docker://{destination}:multi", $"oci:{pulled}:multi");
    }

    /// <summary>
    /// Referrers across a registry without the referrers API (distribution 2.8 answers it 404): written there through
    /// the referrers tag schema (the index tagged sha256-&lt;hex&gt; of the subject), read back from it the same way,
    /// and never synced or compared as a tag of its own.
    /// </summary>
    [SyncToolsFact]
    public async Task ReferrersCrossDistributionThroughTheReferrersTagSchema()
    {
        var source = Repository("shadow1", "e2e/referrers/source");
        var middle = Repository("dist1", "e2e/referrers/middle");
        var back = Repository("shadow2", "e2e/referrers/back");
        var far = Repository("dist2", "e2e/referrers/far");
        await PushAsync("A", $"{source}:v1");
        using var shadow1 = fixture.Shadow1.CreateClient();
        var (subject, _) = await shadow1.GetManifestAsync("e2e/referrers/source", "v1");
        var sbom = await ReplicationTests.PushReferrerAsync(shadow1, "e2e/referrers/source", subject);
        var schemaTag = OciRegistryClient.ReferrersTag(ShadowRegistry.Domain.Digest.Parse(subject));

        // This registry -> distribution: the referrer lands, listed by the tag-schema index; in sync, and stays so.
        Assert.Equal(SyncCommand.InSync, (await RunAsync(true, $"http://{source}", $"http://{middle}")).Exit);
        using var distribution1 = fixture.Distribution1.CreateClient();
        using (var referrers = await distribution1.GetAsync($"v2/e2e/referrers/middle/referrers/{subject}"))
            Assert.Equal(HttpStatusCode.NotFound, referrers.StatusCode);
        Assert.Equal([sbom], await SchemaIndexAsync(distribution1, "e2e/referrers/middle", schemaTag));
        using (var copied = await GetRawAsync(distribution1, "e2e/referrers/middle", sbom)) await copied.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal([schemaTag, "v1"], await TagsAsync(distribution1, "e2e/referrers/middle"));
        Assert.Equal(SyncCommand.InSync, (await RunAsync(false, $"http://{source}", $"http://{middle}")).Exit);
        Assert.Contains("0 write(s)", (await RunAsync(true, $"http://{source}", $"http://{middle}")).Output);

        // Distribution -> this registry: read through the tag schema, served by the referrers API here, no extra tag.
        Assert.Equal(SyncCommand.InSync, (await RunAsync(true, $"http://{middle}", $"http://{back}")).Exit);
        using var shadow2 = fixture.Shadow2.CreateClient();
        var listed = await shadow2.GetFromJsonAsync<JsonObject>($"v2/e2e/referrers/back/referrers/{subject}");
        Assert.Equal([sbom], listed!["manifests"]!.AsArray().Select(m => m!["digest"]!.GetValue<string>()));
        Assert.Equal(["v1"], await TagsAsync(shadow2, "e2e/referrers/back"));

        // Distribution -> distribution: read and written through the tag schema.
        Assert.Equal(SyncCommand.InSync, (await RunAsync(true, $"http://{middle}", $"http://{far}")).Exit);
        using var distribution2 = fixture.Distribution2.CreateClient();
        Assert.Equal([sbom], await SchemaIndexAsync(distribution2, "e2e/referrers/far", schemaTag));
        Assert.Contains("0 write(s)", (await RunAsync(true, $"http://{middle}", $"http://{far}")).Output);

        static async Task<List<string>> SchemaIndexAsync(HttpClient client, string repository, string tag)
        {
            using var response = await GetRawAsync(client, repository, tag);
            await response.ExpectAsync(HttpStatusCode.OK);
            var index = JsonNode.Parse(await response.Content.ReadAsByteArrayAsync())!;
            Assert.Equal("application/vnd.example.sbom", index["manifests"]![0]!["artifactType"]!.GetValue<string>());
            return index["manifests"]!.AsArray().Select(m => m!["digest"]!.GetValue<string>()).ToList();
        }
    }

    [SyncToolsFact]
    public async Task ExitCodeTwoWhenARegistryCannotBeReachedAndOneWhenATagCannotBeSynced()
    {
        var repository = "e2e/errors";
        await PushAsync("A", $"{Repository("dist1", repository)}:v1");
        var unreachable = await RunAsync(false, "--attempts", "1", $"http://{Repository("dist1", repository)}", "http://127.0.0.1:1/e2e/errors");
        Assert.Equal(SyncCommand.Error, unreachable.Exit);
        Assert.Contains("error:", unreachable.Errors);
        var usage = await RunAsync(true, "only-one-argument");
        Assert.Equal(SyncCommand.Error, usage.Exit);

        // A view cannot delete what the base holds: the sync reports the tag and the check says not in sync.
        var baseRepository = Repository("shadow1", repository);
        await PushAsync("B", $"{baseRepository}:base-only");
        var stuck = await RunAsync(true, $"http://{Repository("dist1", repository)}", $"http://{Repository("view1", repository)}");
        Assert.Equal(SyncCommand.NotInSync, stuck.Exit);
        Assert.Contains($"{repository}:base-only extra", stuck.Output);
    }

    private static async Task AssertSameTagsAsync(string source, string destination)
    {
        var (sourceRegistry, sourceRepository) = Split(source);
        var (destinationRegistry, destinationRepository) = Split(destination);
        using var from = new HttpClient { BaseAddress = new Uri($"http://{sourceRegistry}/"), Timeout = TimeSpan.FromSeconds(30) };
        using var to = new HttpClient { BaseAddress = new Uri($"http://{destinationRegistry}/"), Timeout = TimeSpan.FromSeconds(30) };
        var tags = await TagsAsync(from, sourceRepository);
        Assert.Equal(["latest", "multi", "v1", "v1-alias"], tags);
        Assert.Equal(tags, await TagsAsync(to, destinationRepository));
        foreach (var tag in tags)
        {
            using var fromSource = await GetRawAsync(from, sourceRepository, tag);
            using var fromDestination = await GetRawAsync(to, destinationRepository, tag);
            await fromSource.ExpectAsync(HttpStatusCode.OK);
            await fromDestination.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(await fromSource.Content.ReadAsByteArrayAsync(), await fromDestination.Content.ReadAsByteArrayAsync());
        }

        static (string, string) Split(string reference) => (reference[..reference.IndexOf('/')], reference[(reference.IndexOf('/') + 1)..]);
    }

    private static async Task<List<string>> TagsAsync(HttpClient client, string repository)
    {
        var list = await client.GetFromJsonAsync<JsonObject>($"v2/{repository}/tags/list");
        return list!["tags"]!.AsArray().Select(t => t!.GetValue<string>()).Order(StringComparer.Ordinal).ToList();
    }

    private static async Task<HttpResponseMessage> GetRawAsync(HttpClient client, string repository, string reference)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{reference}");
        foreach (var type in OciRegistryClient.ManifestTypes) request.Headers.Accept.ParseAdd(type);
        return await client.SendAsync(request);
    }
}
