using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Changes;

/// <summary>
/// Speculative changes over HTTP: the management API and the views at /v2/changes/&lt;id&gt;/..., against a registry with
/// no upstream (the base is the local namespace). Real clients and a real upstream are in the end-to-end tests.
/// </summary>
public sealed class ChangeApiTests
{
    private const string Source = "ShadowRegistry-Source";

    [Fact]
    public async Task ViewsStackInQueueOrderAndWritesStayInTheirOwnOverlay()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        await client.PutChangeAsync("a", HttpStatusCode.Created);
        await client.PutChangeAsync("b", HttpStatusCode.Created, ahead: ["a"]);
        await client.PutChangeAsync("c", HttpStatusCode.Created);

        var (_, pushedByA) = await client.PushImageAsync("changes/a/app", "latest", seed: 1);

        // B (behind A) sees A's image with the same digest; C (beside) and the base do not.
        var throughB = await client.GetManifestAsync("changes/b/app", "latest");
        Assert.Equal(pushedByA, throughB.Digest);
        Assert.Equal("change/a", throughB.Source);
        using (var response = await client.GetAsync("v2/changes/c/app/manifests/latest")) await response.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using (var response = await client.GetAsync("v2/app/manifests/latest")) await response.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using (var response = await client.GetAsync("v2/_catalog")) Assert.DoesNotContain("app", await response.Content.ReadAsStringAsync());

        // B's own push of the same tag wins in B and stays invisible to A.
        var (_, pushedByB) = await client.PushImageAsync("changes/b/app", "latest", seed: 2);
        Assert.NotEqual(pushedByA, pushedByB);
        Assert.Equal((pushedByB, "change/b"), await client.GetManifestAsync("changes/b/app", "latest"));
        Assert.Equal((pushedByA, "change/a"), await client.GetManifestAsync("changes/a/app", "latest"));

        // Blobs follow the same precedence; a blob pushed only through B is unknown through A.
        using (var blob = await client.GetAsync($"v2/changes/b/app/blobs/{pushedByA}"))
        {
            await blob.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal("change/a", blob.Headers.GetValues(Source).Single());
        }
        using (var blob = await client.GetAsync($"v2/changes/a/app/blobs/{pushedByB}")) await blob.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");

        // Deleting A: B falls back to what it has itself and to the base.
        await client.PushImageAsync("app", "base", seed: 3);
        using (var deleted = await client.DeleteAsync("api/v1/changes/a")) await deleted.ExpectAsync(HttpStatusCode.NoContent);
        using (var response = await client.GetAsync($"v2/changes/b/app/manifests/{pushedByA}")) await response.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        Assert.Equal("local", (await client.GetManifestAsync("changes/b/app", "base")).Source);
        var described = await client.GetFromJsonAsync<JsonObject>("api/v1/changes/b");
        Assert.Equal("deleted", described!["skipped"]![0]!["reason"]!.GetValue<string>());
        using (var gone = await client.GetAsync("v2/changes/a/app/manifests/latest")) await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
    }

    [Fact]
    public async Task TheHostFormServesAChangeAtTheRootPath()
    {
        await using var server = await RegistryServer.StartAsync("--Changes:HostSuffix", "changes.test");
        using var client = server.CreateClient();
        await client.PutChangeAsync("h1", HttpStatusCode.Created);
        var described = await client.GetFromJsonAsync<JsonObject>("api/v1/changes/h1");
        Assert.Equal("h1.changes.test", described!["view"]!["host"]!.GetValue<string>());

        using var viaHost = server.CreateClient();
        viaHost.DefaultRequestHeaders.Host = $"h1.changes.test:{server.BaseAddress.Port}";
        var (_, pushed) = await viaHost.PushImageAsync("app", "latest", seed: 1);
        Assert.Equal((pushed, "change/h1"), await viaHost.GetManifestAsync("app", "latest"));
        Assert.Equal((pushed, "change/h1"), await client.GetManifestAsync("changes/h1/app", "latest"));
        using (var baseTag = await client.GetAsync("v2/app/manifests/latest")) await baseTag.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        // Locations stay in the host form: no path prefix.
        using (var start = await viaHost.PostAsync("v2/app/blobs/uploads/", null))
            Assert.StartsWith("/v2/app/blobs/uploads/", start.Headers.Location!.ToString());
        using (var check = await viaHost.GetAsync("v2/")) await check.ExpectAsync(HttpStatusCode.OK);

        viaHost.DefaultRequestHeaders.Host = $"nobody.changes.test:{server.BaseAddress.Port}";
        using (var unknown = await viaHost.GetAsync("v2/app/tags/list")) await unknown.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
    }

    [Fact]
    public async Task ReferrersThroughAViewComeFromEveryLayer()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        await client.PutChangeAsync("r1", HttpStatusCode.Created);
        await client.PutChangeAsync("r2", HttpStatusCode.Created, ahead: ["r1"]);
        var (subject, subjectDigest) = await client.PushImageAsync("app", "v1", seed: 1);
        var inBase = await PushReferrerAsync(client, "app", subject, subjectDigest, seed: 2);
        var inR1 = await PushReferrerAsync(client, "changes/r1/app", subject, subjectDigest, seed: 3);
        var inR2 = await PushReferrerAsync(client, "changes/r2/app", subject, subjectDigest, seed: 4);

        async Task<string[]> ReferrersAsync(string repository) =>
            (await client.GetFromJsonAsync<JsonObject>($"v2/{repository}/referrers/{subjectDigest}"))!["manifests"]!.AsArray()
                .Select(m => m!["digest"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { inBase, inR1, inR2 }.Order(StringComparer.Ordinal), await ReferrersAsync("changes/r2/app"));
        Assert.Equal(new[] { inBase, inR1 }.Order(StringComparer.Ordinal), await ReferrersAsync("changes/r1/app"));
        Assert.Equal([inBase], await ReferrersAsync("app"));
    }

    private static async Task<string> PushReferrerAsync(HttpClient client, string repository, byte[] subject, string subjectDigest, int seed)
    {
        var config = Encoding.UTF8.GetBytes("{}");
        var configDigest = await client.PushBlobAsync(repository, config);
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["artifactType"] = "application/vnd.example.signature",
            ["config"] = OciHttp.Descriptor("application/vnd.oci.empty.v1+json", configDigest, config.Length),
            ["layers"] = new JsonArray(),
            ["subject"] = OciHttp.Descriptor(OciHttp.OciManifest, subjectDigest, subject.Length),
            ["annotations"] = new JsonObject { ["seed"] = seed.ToString() },
        };
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        using var response = await client.PutManifestAsync(repository, OciHttp.Sha256(bytes), bytes, OciHttp.OciManifest);
        await response.ExpectAsync(HttpStatusCode.Created);
        return OciHttp.Sha256(bytes);
    }

    [Fact]
    public async Task TagListsThroughAViewAreTheUnionOfItsLayersAndPaginate()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        await client.PutChangeAsync("q1", HttpStatusCode.Created);
        await client.PutChangeAsync("q2", HttpStatusCode.Created, ahead: ["q1"]);
        await client.PushImageAsync("app", "base", seed: 1);
        await client.PushImageAsync("changes/q1/app", "one", seed: 2);
        await client.PushImageAsync("changes/q2/app", "two", seed: 3);
        await client.PushImageAsync("changes/q2/app", "base", seed: 4); // shadows the base tag in q2 only

        using var list = await client.GetAsync("v2/changes/q2/app/tags/list");
        await list.ExpectAsync(HttpStatusCode.OK);
        var body = await list.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal("changes/q2/app", body!["name"]!.GetValue<string>());
        Assert.Equal(["base", "one", "two"], body["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal("change/q2, change/q1, local", list.Headers.GetValues(Source).Single());

        using var page = await client.GetAsync("v2/changes/q2/app/tags/list?n=2");
        Assert.Equal(["base", "one"], (await page.Content.ReadFromJsonAsync<JsonObject>())!["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Contains("/v2/changes/q2/app/tags/list?", page.Headers.GetValues("Link").Single());

        // The base list is untouched by the overlays.
        using var baseList = await client.GetAsync("v2/app/tags/list");
        Assert.Equal(["base"], (await baseList.Content.ReadFromJsonAsync<JsonObject>())!["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
    }

    [Fact]
    public async Task PromotionWritesTheBaseByMetadataAloneIsIdempotentAndHonoursExpectations()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        var (_, old) = await client.PushImageAsync("app", "latest", seed: 1);
        await client.PutChangeAsync("m", HttpStatusCode.Created);
        var (_, pushed) = await client.PushImageAsync("changes/m/app", "latest", seed: 2);
        await client.PushImageAsync("changes/m/tools", "v1", seed: 3);
        var blobFiles = BlobFiles(server);

        // A wrong expectation refuses everything, changing nothing.
        using (var refused = await client.PostAsJsonAsync("api/v1/changes/m/promote",
                   new { expect = new Dictionary<string, string?> { ["app:latest"] = pushed, ["tools:v1"] = null } }))
        {
            await refused.ExpectErrorAsync(HttpStatusCode.Conflict, "CHANGE_CONFLICT");
            var mismatch = (await refused.Content.ReadFromJsonAsync<JsonObject>())!["errors"]![0]!["detail"]!["mismatches"]![0]!;
            Assert.Equal(old, mismatch["actual"]!.GetValue<string>());
        }
        Assert.Equal(old, (await client.GetManifestAsync("app", "latest")).Digest);
        using (var none = await client.GetAsync("v2/tools/manifests/v1")) await none.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        using (var promoted = await client.PostAsJsonAsync("api/v1/changes/m/promote",
                   new { expect = new Dictionary<string, string?> { ["app:latest"] = old, ["tools:v1"] = null } }))
        {
            await promoted.ExpectAsync(HttpStatusCode.OK);
            var entries = (await promoted.Content.ReadFromJsonAsync<JsonObject>())!["promoted"]!.AsArray();
            Assert.Equal(2, entries.Count);
            Assert.All(entries, e => Assert.True(e!["changed"]!.GetValue<bool>()));
        }
        Assert.Equal((pushed, "local"), await client.GetManifestAsync("app", "latest"));
        Assert.Equal("local", (await client.GetManifestAsync("tools", "v1")).Source);
        using (var layer = await client.GetAsync($"v2/app/blobs/{pushed}")) await layer.ExpectAsync(HttpStatusCode.OK);
        await PullWholeImageAsync(client, "app", "latest");
        using (var catalog = await client.GetAsync("v2/_catalog")) Assert.Contains("tools", await catalog.Content.ReadAsStringAsync());
        Assert.Equal(blobFiles, BlobFiles(server)); // no byte copied

        // Again: a no-op.
        using (var again = await client.PostAsync("api/v1/changes/m/promote", null))
        {
            await again.ExpectAsync(HttpStatusCode.OK);
            Assert.All((await again.Content.ReadFromJsonAsync<JsonObject>())!["promoted"]!.AsArray(), e => Assert.False(e!["changed"]!.GetValue<bool>()));
        }
        Assert.Equal(pushed, (await client.GetManifestAsync("app", "latest")).Digest);

        // One tag only.
        var (_, newer) = await client.PushImageAsync("changes/m/app", "latest", seed: 4);
        using (var selected = await client.PostAsJsonAsync("api/v1/changes/m/promote", new { tags = new[] { new { repository = "app", tag = "latest" } } }))
            await selected.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(newer, (await client.GetManifestAsync("app", "latest")).Digest);
        using (var unknown = await client.PostAsJsonAsync("api/v1/changes/m/promote", new { tags = new[] { new { repository = "app", tag = "nope" } } }))
            await unknown.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
    }

    [Fact]
    public async Task AViewSeesItsOwnProcessUpdatesAtOnceAndAnotherProcessUpdateWithinTheCacheDuration()
    {
        var clock = new FakeTimeProvider();
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            "--Registry:ChangeCacheDuration", "00:00:02");
        using var client = server.CreateClient();
        await client.PutChangeAsync("a", HttpStatusCode.Created);
        await client.PutChangeAsync("b", HttpStatusCode.Created);
        var pushed = await client.PushImageAsync("changes/a/app", "latest", seed: 1);
        using (var none = await client.GetAsync("v2/changes/b/app/manifests/latest")) await none.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // This process's own update: the next read through the view sees it, whatever was cached.
        await client.PutChangeAsync("b", HttpStatusCode.OK, ahead: ["a"]);
        Assert.Equal("change/a", (await client.GetManifestAsync("changes/b/app", "latest")).Source);
        await client.PutChangeAsync("b", HttpStatusCode.OK, ahead: []);
        using (var dropped = await client.GetAsync("v2/changes/b/app/manifests/latest")) await dropped.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // Another process's update (written straight into storage): seen once the cached records are due again.
        var record = Path.Combine(server.StorageRoot, "changes", "b", "change");
        var json = JsonNode.Parse(await File.ReadAllTextAsync(record))!;
        json["ahead"] = new JsonArray(JsonValue.Create("a"));
        await File.WriteAllTextAsync(record, json.ToJsonString());
        clock.Advance(TimeSpan.FromSeconds(2));
        var seen = await client.GetManifestAsync("changes/b/app", "latest");
        Assert.Equal("change/a", seen.Source);
        Assert.Equal(pushed.Digest, seen.Digest);
    }

    [Fact]
    public async Task ExpiredChangesDisappearAndTheirOverlaysAreRemovedInTheBackground()
    {
        var clock = new FakeTimeProvider();
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            "--Changes:CleanupInterval", "00:05:00", "--Changes:ExpiredRetention", "00:10:00");
        using var client = server.CreateClient();
        await client.PutChangeAsync("short", HttpStatusCode.Created, ttl: "2m");
        await client.PutChangeAsync("behind", HttpStatusCode.Created, ahead: ["short"], ttl: "1h");
        await client.PushImageAsync("changes/short/app", "latest", seed: 1);
        Assert.Equal("change/short", (await client.GetManifestAsync("changes/behind/app", "latest")).Source);
        var overlay = Directory.GetDirectories(Path.Combine(server.StorageRoot, "changes", "short")).Single();

        clock.Advance(TimeSpan.FromMinutes(2));
        using (var expired = await client.GetAsync("v2/changes/short/app/manifests/latest"))
        {
            await expired.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
            Assert.Contains("expired", await expired.Content.ReadAsStringAsync());
        }
        using (var shown = await client.GetAsync("api/v1/changes/short")) await shown.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        using (var behind = await client.GetAsync("v2/changes/behind/app/manifests/latest")) await behind.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        var listed = await client.GetFromJsonAsync<JsonObject>("api/v1/changes");
        Assert.Equal(["behind"], listed!["changes"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()));
        Assert.Equal("expired", listed["changes"]![0]!["skipped"]![0]!["reason"]!.GetValue<string>());
        Assert.True(Directory.Exists(overlay)); // not yet: the clean-up runs on its interval

        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.False(Directory.Exists(overlay));
        // Still told it expired (the record is a tombstone for Changes:ExpiredRetention), then forgotten.
        using (var expired = await client.GetAsync("v2/changes/short/app/manifests/latest")) Assert.Contains("expired", await expired.Content.ReadAsStringAsync());
        clock.Advance(TimeSpan.FromMinutes(10));
        Assert.False(File.Exists(Path.Combine(server.StorageRoot, "changes", "short", "change")));
        using (var unknown = await client.GetAsync("v2/changes/short/app/manifests/latest")) Assert.Contains("unknown", await unknown.Content.ReadAsStringAsync());

        // The id can be used again, from an empty overlay.
        await client.PutChangeAsync("short", HttpStatusCode.Created);
        using (var fresh = await client.GetAsync("v2/changes/short/app/manifests/latest")) await fresh.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
    }

    [Fact]
    public async Task BadInputGetsClearErrors()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        await client.PutChangeAsync("x", HttpStatusCode.Created);
        await client.PutChangeAsync("y", HttpStatusCode.Created, ahead: ["x"]);

        using (var cycle = await client.PutAsJsonAsync("api/v1/changes/x", new { ahead = new[] { "y" } })) await cycle.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var self = await client.PutAsJsonAsync("api/v1/changes/x", new { ahead = new[] { "x" } })) await self.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var badId = await client.PutAsJsonAsync("api/v1/changes/Not_Valid", new { })) await badId.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var longId = await client.PutAsJsonAsync($"api/v1/changes/{new string('a', 65)}", new { })) await longId.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var badAhead = await client.PutAsJsonAsync("api/v1/changes/z", new { ahead = new[] { "../x" } })) await badAhead.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var badTtl = await client.PutAsJsonAsync("api/v1/changes/z", new { ttl = "soon" })) await badTtl.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var longTtl = await client.PutAsJsonAsync("api/v1/changes/z", new { ttl = "400d" })) await longTtl.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var badJson = await client.PutAsync("api/v1/changes/z", new StringContent("{\"ahead\": 5}"))) await badJson.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var unknown = await client.GetAsync("api/v1/changes/nobody")) await unknown.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        using (var deleteUnknown = await client.DeleteAsync("api/v1/changes/nobody")) await deleteUnknown.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        using (var view = await client.GetAsync("v2/changes/nobody/app/tags/list")) await view.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        using (var badView = await client.GetAsync("v2/changes/BAD/app/tags/list")) await badView.ExpectErrorAsync(HttpStatusCode.BadRequest, "NAME_INVALID");
        using (var label = await client.GetAsync("api/v1/changes?label=nokey")) await label.ExpectErrorAsync(HttpStatusCode.BadRequest, "CHANGE_INVALID");
        using (var other = await client.GetAsync("api/v1/changes/x/elsewhere")) await other.ExpectErrorAsync(HttpStatusCode.NotFound, "NOT_FOUND");

        // An update keeps what it does not mention.
        using var updated = await client.PutAsJsonAsync("api/v1/changes/y", new { labels = new Dictionary<string, string> { ["pipeline"] = "gate" } });
        await updated.ExpectAsync(HttpStatusCode.OK);
        var body = await updated.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(["x"], body!["ahead"]!.AsArray().Select(a => a!.GetValue<string>()));
        var filtered = await client.GetFromJsonAsync<JsonObject>("api/v1/changes?label=pipeline=gate");
        Assert.Equal(["y"], filtered!["changes"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()));
    }

    /// <summary>
    /// A gate queue: three changes, each job pulling its base image through its view, adding a layer and pushing; the
    /// first merges and is promoted, the others are re-parented and still resolve as they should.
    /// </summary>
    [Fact]
    public async Task GateQueueScenario()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        var (baseManifest, _) = await client.PushImageAsync("base/image", "stable", seed: 10);
        await client.PutChangeAsync("101", HttpStatusCode.Created);
        await client.PutChangeAsync("102", HttpStatusCode.Created, ahead: ["101"]);
        await client.PutChangeAsync("103", HttpStatusCode.Created, ahead: ["102", "101"]);

        var built = new Dictionary<string, string>();
        foreach (var change in new[] { "101", "102", "103" })
        {
            // The job pulls its base through its view and builds on top of it: the base layers are mounted, one new layer pushed.
            var pulled = await client.GetManifestAsync($"changes/{change}/base/image", "stable");
            Assert.Equal("local", pulled.Source);
            built[change] = await PushDerivedImageAsync(client, $"changes/{change}/project{change}/app", baseManifest, "base/image", seed: int.Parse(change));
        }

        // The last change sees both changes ahead of it, and its own.
        foreach (var change in new[] { "101", "102", "103" })
            Assert.Equal((built[change], $"change/{change}"), await client.GetManifestAsync($"changes/103/project{change}/app", "latest"));
        // The first sees nothing of those behind it.
        using (var behind = await client.GetAsync("v2/changes/101/project102/app/manifests/latest")) await behind.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // 101 merges: promoted, then deleted; the others are re-parented.
        using (var promoted = await client.PostAsync("api/v1/changes/101/promote", null)) await promoted.ExpectAsync(HttpStatusCode.OK);
        using (var deleted = await client.DeleteAsync("api/v1/changes/101")) await deleted.ExpectAsync(HttpStatusCode.NoContent);
        await client.PutChangeAsync("102", HttpStatusCode.OK, ahead: []);
        await client.PutChangeAsync("103", HttpStatusCode.OK, ahead: ["102"]);

        Assert.Equal((built["101"], "local"), await client.GetManifestAsync("changes/103/project101/app", "latest"));
        Assert.Equal((built["101"], "local"), await client.GetManifestAsync("changes/102/project101/app", "latest"));
        Assert.Equal((built["102"], "change/102"), await client.GetManifestAsync("changes/103/project102/app", "latest"));
        Assert.Equal((built["103"], "change/103"), await client.GetManifestAsync("changes/103/project103/app", "latest"));
        await PullWholeImageAsync(client, "changes/103/project101/app", "latest");
        await PullWholeImageAsync(client, "project101/app", "latest");
        using (var notYet = await client.GetAsync("v2/project102/app/manifests/latest")) await notYet.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
    }

    [Fact]
    public async Task ThirtyTwoChangesPushingSharedLayersAtOnceEachSeeOnlyTheirOwn()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        const int changes = 32;
        var shared = Enumerable.Range(0, 3).Select(i => OciHttp.RandomBytes(64 * 1024 + i, 500 + i)).ToArray();
        for (var i = 0; i < changes; i++) await client.PutChangeAsync($"c{i}", HttpStatusCode.Created);

        var pushed = await Task.WhenAll(Enumerable.Range(0, changes).Select(async i =>
        {
            var repository = $"changes/c{i}/team/app";
            var layers = new List<(string Digest, int Size)>();
            foreach (var layer in shared) layers.Add((await client.PushBlobAsync(repository, layer), layer.Length));
            var own = OciHttp.RandomBytes(1000 + i, 900 + i);
            layers.Add((await client.PushBlobAsync(repository, own), own.Length));
            var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"change\":{i}}}");
            var configDigest = await client.PushBlobAsync(repository, config);
            var manifest = Manifest(configDigest, config.Length, layers);
            using var response = await client.PutManifestAsync(repository, "latest", manifest, OciHttp.OciManifest);
            await response.ExpectAsync(HttpStatusCode.Created);
            return OciHttp.Sha256(manifest);
        }));

        for (var i = 0; i < changes; i++)
        {
            Assert.Equal((pushed[i], $"change/c{i}"), await client.GetManifestAsync($"changes/c{i}/team/app", "latest"));
            var tags = await client.GetFromJsonAsync<JsonObject>($"api/v1/changes/c{i}");
            Assert.Equal(pushed[i], tags!["tags"]!.AsArray().Single()!["digest"]!.GetValue<string>());
        }
        using (var baseTag = await client.GetAsync("v2/team/app/manifests/latest")) await baseTag.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        // Every blob once: 3 shared layers, then per change a layer, a config and a manifest.
        Assert.Equal(3 + changes * 3, BlobFiles(server).Count);
    }

    [Fact]
    public async Task ManagingChangesNeedsTheWriteRoleWhenAuthenticationIsOn()
    {
        var writer = ("ci", "ci-secret");
        var reader = ("viewer", "viewer-secret");
        await using var server = await RegistryServer.StartAsync(
            "--Auth:Users:0:Name", writer.Item1, "--Auth:Users:0:PasswordHash", PasswordHash.Hash(writer.Item2), "--Auth:Users:0:Role", "write",
            "--Auth:Users:1:Name", reader.Item1, "--Auth:Users:1:PasswordHash", PasswordHash.Hash(reader.Item2), "--Auth:Users:1:Role", "read");
        using var client = server.CreateClient();
        using (var anonymous = await client.PutAsJsonAsync("api/v1/changes/g1", new { })) await anonymous.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        client.DefaultRequestHeaders.Authorization = Basic(reader);
        using (var denied = await client.PutAsJsonAsync("api/v1/changes/g1", new { })) await denied.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
        client.DefaultRequestHeaders.Authorization = Basic(("ci", "wrong"));
        using (var wrong = await client.PutAsJsonAsync("api/v1/changes/g1", new { })) await wrong.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        client.DefaultRequestHeaders.Authorization = Basic(writer);
        using (var created = await client.PutAsJsonAsync("api/v1/changes/g1", new { })) await created.ExpectAsync(HttpStatusCode.Created);
        using (var listed = await client.GetAsync("api/v1/changes")) await listed.ExpectAsync(HttpStatusCode.OK);
    }

    private static AuthenticationHeaderValue Basic((string Name, string Password) user) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user.Name}:{user.Password}")));

    private static SortedSet<string> BlobFiles(RegistryServer server) =>
        new(Directory.GetFiles(Path.Combine(server.StorageRoot, "blobs"), "*", SearchOption.AllDirectories)
            .Where(path => !Path.GetFileName(path).StartsWith('.')), StringComparer.Ordinal);

    private static byte[] Manifest(string configDigest, int configSize, IEnumerable<(string Digest, int Size)> layers)
    {
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", configDigest, configSize),
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l.Digest, l.Size)).ToArray()),
        };
        return Encoding.UTF8.GetBytes(manifest.ToJsonString());
    }

    /// <summary>A new image on top of <paramref name="baseManifest"/>: its layers mounted from the base repository, plus one new layer.</summary>
    private static async Task<string> PushDerivedImageAsync(HttpClient client, string repository, byte[] baseManifest, string baseRepository, int seed)
    {
        using var document = JsonDocument.Parse(baseManifest);
        var layers = new List<(string, int)>();
        foreach (var layer in document.RootElement.GetProperty("layers").EnumerateArray())
        {
            var digest = layer.GetProperty("digest").GetString()!;
            var prefix = repository[..(repository.IndexOf('/', "changes/".Length) + 1)];
            using var mount = await client.PostAsync($"v2/{repository}/blobs/uploads/?mount={digest}&from={prefix}{baseRepository}", null);
            await mount.ExpectAsync(HttpStatusCode.Created);
            layers.Add((digest, layer.GetProperty("size").GetInt32()));
        }
        var own = OciHttp.RandomBytes(2000, seed);
        layers.Add((await client.PushBlobAsync(repository, own), own.Length));
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"build\":{seed}}}");
        var configDigest = await client.PushBlobAsync(repository, config);
        var manifest = Manifest(configDigest, config.Length, layers);
        using var response = await client.PutManifestAsync(repository, "latest", manifest, OciHttp.OciManifest);
        await response.ExpectAsync(HttpStatusCode.Created);
        return OciHttp.Sha256(manifest);
    }

    /// <summary>GETs the manifest and every blob it names, checking each digest.</summary>
    private static async Task PullWholeImageAsync(HttpClient client, string repository, string tag)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{tag}");
        request.Headers.Accept.ParseAdd(OciHttp.OciManifest);
        using var response = await client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
        using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        var digests = document.RootElement.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()!)
            .Append(document.RootElement.GetProperty("config").GetProperty("digest").GetString()!);
        foreach (var digest in digests)
        {
            var bytes = await client.GetByteArrayAsync($"v2/{repository}/blobs/{digest}");
            Assert.Equal(digest, OciHttp.Sha256(bytes));
        }
    }
}

internal static class ChangeHttp
{
    public static async Task PutChangeAsync(this HttpClient client, string id, HttpStatusCode expected, string[]? ahead = null, string? ttl = null)
    {
        var body = new JsonObject();
        if (ahead is not null) body["ahead"] = new JsonArray(ahead.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray());
        if (ttl is not null) body["ttl"] = ttl;
        using var response = await client.PutAsync($"api/v1/changes/{id}", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        await response.ExpectAsync(expected);
    }

    /// <summary>The digest of the manifest a GET answers with, and which layer the registry says answered.</summary>
    public static async Task<(string Digest, string Source)> GetManifestAsync(this HttpClient client, string repository, string reference)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{reference}");
        request.Headers.Accept.ParseAdd(OciHttp.OciManifest);
        request.Headers.Accept.ParseAdd(OciHttp.DockerManifest);
        using var response = await client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
        var content = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(OciHttp.Sha256(content), response.Headers.GetValues("Docker-Content-Digest").Single());
        return (OciHttp.Sha256(content), response.Headers.GetValues("ShadowRegistry-Source").Single());
    }
}
