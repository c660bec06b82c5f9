using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;
using ShadowRegistry.Hosting;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Gc;

/// <summary>
/// What a collection removes and keeps, over the filesystem and in-memory drivers, on a fake clock (grace period 2 h,
/// the default). The concurrency and disk-usage acceptance tests are in <see cref="GcConcurrencyTests"/>.
/// </summary>
public sealed class GarbageCollectionTests
{
    public static TheoryData<string> Drivers => ["filesystem", "inmemory"];

    private static byte[] Layer(int seed, int size = 4096) => OciHttp.RandomBytes(size, seed);

    [Theory]
    [MemberData(nameof(Drivers))]
    public async Task ExpiredChangesLoseTheirUniqueLayersAndKeepThoseSharedWithTheBaseOrALiveChange(string driver)
    {
        await using var gc = await GcServer.StartAsync(driver);
        using var client = gc.Server.CreateClient();
        byte[] shared = Layer(1), withLive = Layer(2), unique = Layer(3), liveOwn = Layer(4);
        await client.PushImageOfAsync("app", "base", [shared], "base");
        await client.PutChangeAsync("dead", HttpStatusCode.Created, ttl: "1h");
        await client.PutChangeAsync("live", HttpStatusCode.Created, ttl: "24h");
        var deadManifest = await client.PushImageOfAsync("changes/dead/app", "latest", [shared, withLive, unique], "dead");
        await client.PushImageOfAsync("changes/live/app", "latest", [withLive, liveOwn], "live");

        gc.Clock.Advance(TimeSpan.FromHours(3)); // the change expired 2 h ago, and nothing was used since
        var report = await gc.CollectAsync();

        Assert.False(await gc.StoresAsync(OciHttp.Sha256(unique)));
        Assert.False(await gc.StoresAsync(deadManifest));
        Assert.True(await gc.StoresAsync(OciHttp.Sha256(shared)));
        Assert.True(await gc.StoresAsync(OciHttp.Sha256(withLive)));
        Assert.Equal(3, report.Removed["blobs"].Count); // the unique layer, the dead change's config and manifest
        Assert.Equal(1, report.Removed["overlays"].Count);
        await client.AssertWholeAsync("app", "base");
        await client.AssertWholeAsync("changes/live/app", "latest");
        // A second run finds nothing more.
        Assert.Equal(0, (await gc.CollectAsync()).Removed["blobs"].Count);
    }

    [Theory]
    [MemberData(nameof(Drivers))]
    public async Task IndexChildrenAndReferrersOfKeptManifestsStayWhileUntaggedManifestsGo(string driver)
    {
        await using var gc = await GcServer.StartAsync(driver, "--Registry:Gc:UntaggedAfter", "01:00:00");
        using var client = gc.Server.CreateClient();
        var amd64 = await client.PushImageOfAsync("multi", "amd64-tmp", [Layer(10)], "amd64");
        var arm64 = await client.PushImageOfAsync("multi", "arm64-tmp", [Layer(11)], "arm64");
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciIndex,
            ["manifests"] = new JsonArray(await client.DescribeAsync("multi", amd64), await client.DescribeAsync("multi", arm64)),
        };
        var indexBytes = Encoding.UTF8.GetBytes(index.ToJsonString());
        using (var put = await client.PutManifestAsync("multi", "latest", indexBytes, OciHttp.OciIndex)) await put.ExpectAsync(HttpStatusCode.Created);
        var indexDigest = OciHttp.Sha256(indexBytes);
        // The platform manifests stay only as the index's children.
        foreach (var tag in new[] { "amd64-tmp", "arm64-tmp" })
            using (var deleted = await client.DeleteAsync($"v2/multi/manifests/{tag}")) await deleted.ExpectAsync(HttpStatusCode.Accepted);
        var signatureLayer = Layer(12);
        var signature = await client.PushImageOfAsync("multi", "sha256-sig", [signatureLayer], "signature", subject: await client.DescribeAsync("multi", indexDigest));
        using (var deleted = await client.DeleteAsync("v2/multi/manifests/sha256-sig")) await deleted.ExpectAsync(HttpStatusCode.Accepted);
        // An untagged manifest nothing reaches, and a referrer of it.
        var orphanLayer = Layer(13);
        var orphan = await client.PushImageOfAsync("multi", "orphan", [orphanLayer], "orphan");
        var orphanReferrer = await client.PushImageOfAsync("multi", "orphan-sig", [Layer(14)], "orphan-sig", subject: await client.DescribeAsync("multi", orphan));
        foreach (var tag in new[] { "orphan", "orphan-sig" })
            using (var deleted = await client.DeleteAsync($"v2/multi/manifests/{tag}")) await deleted.ExpectAsync(HttpStatusCode.Accepted);

        gc.Clock.Advance(TimeSpan.FromHours(3));
        var report = await gc.CollectAsync();

        await client.AssertWholeAsync("multi", "latest");
        await client.AssertWholeAsync("multi", signature);
        Assert.True(await gc.StoresAsync(OciHttp.Sha256(signatureLayer)));
        using (var referrers = await client.GetAsync($"v2/multi/referrers/{indexDigest}"))
            Assert.Contains(signature, await referrers.Content.ReadAsStringAsync());
        foreach (var gone in new[] { orphan, orphanReferrer })
            using (var response = await client.GetAsync($"v2/multi/manifests/{gone}")) await response.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        Assert.False(await gc.StoresAsync(OciHttp.Sha256(orphanLayer)));
        Assert.Equal(2, report.Removed["manifests"].Count);
    }

    [Theory]
    [MemberData(nameof(Drivers))]
    public async Task AbandonedUploadsAreRemoved(string driver)
    {
        await using var gc = await GcServer.StartAsync(driver, "--Registry:UploadExpiry", "01:00:00");
        using var client = gc.Server.CreateClient();
        using var start = await client.PostAsync("v2/app/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        using (var patch = await client.PatchAsync(location, new ByteArrayContent(Layer(20, 5000)))) await patch.ExpectAsync(HttpStatusCode.Accepted);

        Assert.Equal(0, (await gc.CollectAsync()).Removed["uploads"].Count); // just written
        gc.Clock.Advance(TimeSpan.FromHours(2));
        if (driver == "filesystem") File.SetLastWriteTimeUtc(Directory.GetFiles(Path.Combine(gc.Server.StorageRoot, "uploads"), "data", SearchOption.AllDirectories).Single(),
            gc.Clock.GetUtcNow().UtcDateTime.AddHours(-2)); // the filesystem keeps real times
        var dry = await gc.CollectAsync(dryRun: true);
        Assert.Equal((1, 5000), dry.Removed["uploads"]);
        var report = await gc.CollectAsync();
        Assert.Equal((1, 5000), report.Removed["uploads"]);
        using var status = await client.GetAsync(location);
        await status.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
    }

    [Theory]
    [MemberData(nameof(Drivers))]
    public async Task NothingUsedWithinTheGracePeriodIsRemoved(string driver)
    {
        await using var gc = await GcServer.StartAsync(driver, "--Registry:Gc:UntaggedAfter", "00:10:00");
        using var client = gc.Server.CreateClient();
        var loose = Layer(30);
        var looseDigest = await client.PushBlobAsync("app", loose); // uploaded, no manifest yet
        var untagged = await client.PushImageOfAsync("app", "tmp", [Layer(31)], "untagged");
        using (var deleted = await client.DeleteAsync("v2/app/manifests/tmp")) await deleted.ExpectAsync(HttpStatusCode.Accepted);

        gc.Clock.Advance(TimeSpan.FromMinutes(100)); // past UntaggedAfter, within the grace period
        var report = await gc.CollectAsync();
        Assert.Equal(0, report.Removed["blobs"].Count + report.Removed["manifests"].Count);
        Assert.Equal(4, report.BlobsInGrace); // the loose blob, the untagged manifest, its config and layer

        // A HEAD (a pushing client checking it need not upload) is a use: the blob gets a new grace period.
        using (var head = new HttpRequestMessage(HttpMethod.Head, $"v2/app/blobs/{looseDigest}"))
        using (var headed = await client.SendAsync(head)) await headed.ExpectAsync(HttpStatusCode.OK);
        gc.Clock.Advance(TimeSpan.FromMinutes(60)); // 2 h 40 after the upload, 1 h after the HEAD
        var dry = await gc.CollectAsync(dryRun: true);
        Assert.Equal(3, dry.Removed["blobs"].Count);
        Assert.Contains(dry.Items, i => i.Kind == "manifests" && i.What.EndsWith(untagged, StringComparison.Ordinal));
        Assert.True(await gc.StoresAsync(untagged)); // a dry run changes nothing
        report = await gc.CollectAsync();
        Assert.Equal(3, report.Removed["blobs"].Count);
        Assert.True(await gc.StoresAsync(looseDigest));

        gc.Clock.Advance(TimeSpan.FromHours(2));
        Assert.Equal(1, (await gc.CollectAsync()).Removed["blobs"].Count);
        Assert.False(await gc.StoresAsync(looseDigest));
        // Swept: a HEAD says so, and pushing it again works.
        using (var head = new HttpRequestMessage(HttpMethod.Head, $"v2/app/blobs/{looseDigest}"))
        using (var headed = await client.SendAsync(head)) Assert.Equal(HttpStatusCode.NotFound, headed.StatusCode);
        await client.PushBlobAsync("app", loose);
        Assert.True(await gc.StoresAsync(looseDigest));
    }

    [Fact]
    public async Task AManifestWhoseBlobWasSweptFailsCleanlyAndCanBeRetried()
    {
        await using var gc = await GcServer.StartAsync("inmemory");
        using var client = gc.Server.CreateClient();
        var layer = Layer(40);
        await client.PushBlobAsync("app", layer);
        gc.Clock.Advance(TimeSpan.FromHours(3)); // the client took longer than the grace period to push its manifest
        await gc.CollectAsync();

        var config = await client.PushBlobAsync("app", "{}"u8.ToArray());
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", config, 2),
            ["layers"] = new JsonArray(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", OciHttp.Sha256(layer), layer.Length)),
        }.ToJsonString());
        using (var put = await client.PutManifestAsync("app", "v1", manifest, OciHttp.OciManifest)) await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_BLOB_UNKNOWN");
        using (var tag = await client.GetAsync("v2/app/manifests/v1")) await tag.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        await client.PushBlobAsync("app", layer);
        using (var put = await client.PutManifestAsync("app", "v1", manifest, OciHttp.OciManifest)) await put.ExpectAsync(HttpStatusCode.Created);
        await client.AssertWholeAsync("app", "v1");
    }

    [Theory]
    [MemberData(nameof(Drivers))]
    public async Task CachedUpstreamBlobsBeyondTheLimitGoLeastRecentlyUsedFirst(string driver)
    {
        using var upstream = FakeUpstream.Start();
        byte[] a = Layer(60, 1000), b = Layer(61, 1000), c = Layer(62, 1000);
        foreach (var blob in new[] { a, b, c }) upstream.ServeBlob("lib/x", blob);
        await using var gc = await GcServer.StartAsync(driver, upstream.RegistryArgs("--Shadow:CacheBlobs", "true", "--Registry:Gc:CacheMaxBytes", "2000"));
        using var client = gc.Server.CreateClient();
        async Task PullAsync(byte[] blob)
        {
            using var response = await client.GetAsync($"v2/lib/x/blobs/{OciHttp.Sha256(blob)}");
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(OciHttp.Sha256(blob), OciHttp.Sha256(await response.Content.ReadAsByteArrayAsync()));
            gc.Clock.Advance(TimeSpan.FromMinutes(10));
        }
        await PullAsync(a);
        await PullAsync(b);
        await PullAsync(c);
        Assert.True(await gc.StoresAsync(OciHttp.Sha256(a)));
        await PullAsync(a); // from the cache now: a use, so b is the least recently used

        gc.Clock.Advance(TimeSpan.FromHours(3));
        var report = await gc.CollectAsync();
        Assert.Equal(1, report.Removed["cache_links"].Count);
        Assert.False(await gc.StoresAsync(OciHttp.Sha256(b)));
        Assert.True(await gc.StoresAsync(OciHttp.Sha256(a)));
        Assert.True(await gc.StoresAsync(OciHttp.Sha256(c)));
        await PullAsync(b); // fetched from the upstream again
    }

    /// <summary>In memory only: a tag's age is its object's time, which the filesystem takes from the real clock.</summary>
    [Fact]
    public async Task TagRetentionRemovesOldTagsOfMatchingRepositoriesOnly()
    {
        await using var gc = await GcServer.StartAsync("inmemory", "--Registry:Gc:TagRetention:0:Repositories:0", "ci/**",
            "--Registry:Gc:TagRetention:0:OlderThan", "1.00:00:00", "--Registry:Gc:UntaggedAfter", "01:00:00");
        using var client = gc.Server.CreateClient();
        var oldLayer = Layer(70);
        await client.PushImageOfAsync("ci/app", "old", [oldLayer], "old");
        await client.PushImageOfAsync("release/app", "old", [Layer(71)], "kept");
        gc.Clock.Advance(TimeSpan.FromDays(2));
        await client.PushImageOfAsync("ci/app", "fresh", [Layer(72)], "fresh");

        var report = await gc.CollectAsync();
        Assert.Equal(["ci/app:old"], report.Items.Where(i => i.Kind == "tags").Select(i => i.What.Split(' ')[0]));
        using (var gone = await client.GetAsync("v2/ci/app/manifests/old")) await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        await client.AssertWholeAsync("ci/app", "fresh");
        await client.AssertWholeAsync("release/app", "old");
        Assert.False(await gc.StoresAsync(OciHttp.Sha256(oldLayer))); // its image, untagged for long enough, went with it
    }

    [Fact]
    public async Task CollectionsAreCountedInTheMetrics()
    {
        await using var gc = await GcServer.StartAsync("inmemory");
        using var client = gc.Server.CreateClient();
        await client.PushBlobAsync("app", Layer(50, 3000));
        gc.Clock.Advance(TimeSpan.FromHours(3));
        await gc.CollectAsync();
        var metrics = await (await client.GetAsync("metrics")).Content.ReadAsStringAsync();
        Assert.Contains("shadowregistry_gc_removed_total{kind=\"blobs\"} 1", metrics);
        Assert.Contains("shadowregistry_gc_removed_bytes_total{kind=\"blobs\"} 3000", metrics);
        Assert.Contains("shadowregistry_gc_runs_total{outcome=\"completed\"} 1", metrics);
        Assert.Contains("shadowregistry_gc_run_duration_seconds_count 1", metrics);
    }

    /// <summary>Fails every deletion of a layer link while armed.</summary>
    private sealed class FailingUnlinks(IStorageDriver inner) : DelegatingStorageDriver(inner)
    {
        public volatile bool Armed;

        public override Task DeleteAsync(string path, CancellationToken cancellationToken) =>
            Armed && path.Contains("/_layers/", StringComparison.Ordinal)
                ? Task.FromException(new IOException("injected: the store failed a delete"))
                : Inner.DeleteAsync(path, cancellationToken);
    }

    [Fact]
    public async Task AStepThatFailsEndsEveryClaimOfItsBatchAndTheNextRunFinishes()
    {
        var storage = new FailingUnlinks(new InMemoryDriver());
        await using var gc = await GcServer.StartOverAsync(storage, "--Registry:Gc:UntaggedAfter", "01:00:00");
        using var client = gc.Server.CreateClient();
        var layers = Enumerable.Range(0, 6).Select(i => Layer(100 + i)).ToList();
        var manifest = await client.PushImageOfAsync("app", "tmp", layers, "tmp");
        var config = OciHttp.Sha256(Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"tmp\"}"));
        var all = layers.Select(OciHttp.Sha256).Append(config).Append(manifest).ToList();
        foreach (var digest in all) Assert.True(await gc.StoresAsync(digest));
        using (var deleted = await client.DeleteAsync("/v2/app/manifests/tmp")) Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        gc.Clock.Advance(TimeSpan.FromHours(3));

        storage.Armed = true;
        await Assert.ThrowsAsync<IOException>(() => gc.CollectAsync());
        var touches = gc.Server.Services.GetRequiredService<BlobTouches>();
        foreach (var layer in layers)
        {
            var digest = Digest.Parse(OciHttp.Sha256(layer));
            Assert.True(await gc.StoresAsync(digest.ToString())); // no bytes go before every link is gone
            // No claim left standing (it would make the blob look missing to pushes): given up, recorded as a use.
            Assert.False(Assert.IsType<BlobTouches.Stamp>(await touches.ReadAsync(digest, CancellationToken.None)).IsClaim);
        }
        using (var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v2/app/blobs/{OciHttp.Sha256(layers[0])}")))
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);

        storage.Armed = false;
        gc.Clock.Advance(TimeSpan.FromHours(3)); // past the grace period of the claims given up
        await gc.CollectAsync();
        // Six layers, the config and the manifest: the manifest's batch (no layer link to fail) may have finished in the failed run.
        foreach (var digest in all) Assert.False(await gc.StoresAsync(digest));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("257")]
    public async Task AParallelismOutOfRangeRefusesToStart(string value)
    {
        using var scratch = new ScratchDirectory("gc-parallelism");
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = RegistryApp.Build(["--urls", "http://127.0.0.1:0", "--Registry:StorageRoot", scratch.Path, "--Registry:Gc:Parallelism", value]);
            await app.StartAsync();
        });
        Assert.Contains("Registry:Gc:Parallelism must be between 1 and 256", refused.Message);
    }

    /// <summary>Holds the first write of one path (until <see cref="Release"/>), saying when it got there.</summary>
    private sealed class HeldWrite(IStorageDriver inner, string path) : DelegatingStorageDriver(inner)
    {
        private readonly TaskCompletionSource arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int held;

        public Task Arrived => arrived.Task;

        public void Release() => released.TrySetResult();

        private async Task WaitAsync(string written)
        {
            if (written != path || Interlocked.Exchange(ref held, 1) == 1) return;
            arrived.TrySetResult();
            await released.Task;
        }

        public override async Task PutContentAsync(string written, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
        {
            await WaitAsync(written);
            await Inner.PutContentAsync(written, content, cancellationToken);
        }

        public override async Task<bool> PutIfAbsentAsync(string written, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
        {
            await WaitAsync(written);
            return await Inner.PutIfAbsentAsync(written, content, cancellationToken);
        }

        public override async Task<bool> PutIfVersionMatchesAsync(string written, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken)
        {
            await WaitAsync(written);
            return await Inner.PutIfVersionMatchesAsync(written, content, expected, cancellationToken);
        }
    }

    /// <summary>
    /// A collection that starts while a manifest push is between storing the manifest and writing its tag reads the
    /// repository without the tag, and the manifest's bytes were last used when they were written: without the push's
    /// second use of its own bytes the collection swept them, and the push answered 201 with a tag leading nowhere.
    /// Now either the push wins (and the manifest stays) or it fails cleanly and leaves no tag.
    /// </summary>
    [Fact]
    public async Task AManifestSweptBetweenItsWriteAndItsTagIsNeverLeftBehindATag()
    {
        var storage = new HeldWrite(new InMemoryDriver(), "/repositories/app/_manifests/tags/new");
        await using var gc = await GcServer.StartOverAsync(storage, "--Registry:Gc:UntaggedAfter", "00:01:00");
        using var client = gc.Server.CreateClient();
        // The config and layer stay reachable from another tag, so only the new manifest's own bytes are at stake.
        var layer = Layer(50);
        await client.PushImageOfAsync("app", "keep", [layer], "shared");
        var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"shared\"}");
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", OciHttp.Sha256(config), config.Length),
            ["layers"] = new JsonArray(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", OciHttp.Sha256(layer), layer.Length)),
            ["annotations"] = new JsonObject { ["build"] = "2" },
        }.ToJsonString());

        var push = client.PutManifestAsync("app", "new", manifest, OciHttp.OciManifest);
        await storage.Arrived.WaitAsync(TimeSpan.FromSeconds(30)); // stored, its tag not yet written
        gc.Clock.Advance(TimeSpan.FromHours(3));
        var report = await gc.CollectAsync();
        Assert.Equal(1, report.Removed["blobs"].Count); // the new manifest's bytes, seen untagged and old
        storage.Release();

        using var answered = await push.WaitAsync(TimeSpan.FromSeconds(30));
        if (answered.StatusCode == HttpStatusCode.Created) await client.AssertWholeAsync("app", "new");
        else
        {
            await answered.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_BLOB_UNKNOWN");
            using var tag = await client.GetAsync("v2/app/manifests/new");
            await tag.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
            using var again = await client.PutManifestAsync("app", "new", manifest, OciHttp.OciManifest);
            await again.ExpectAsync(HttpStatusCode.Created);
            await client.AssertWholeAsync("app", "new");
        }
        await client.AssertWholeAsync("app", "keep");
    }
}
