using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Gc;

/// <summary>The issue's acceptance tests for collections racing pushes, and for the disk space one collection gives back.</summary>
public sealed class GcConcurrencyTests
{
    private const int Clients = 16;
    private const int OperationsPerClient = 12;
    private const int Repositories = 4;

    /// <summary>
    /// Collections back to back, each a grace period and a half after the one before on the fake clock (so everything
    /// used before the previous collection is fair game), while 16 clients push images that share layers and delete
    /// tags. A push attempt during which the clock moved may be told MANIFEST_BLOB_UNKNOWN (a layer it checked was
    /// swept before its manifest came) and then pushes again; an attempt during which the clock did not move must
    /// work, since all it used was fresh; nothing else may fail, and every tag left must lead to whole, correct content.
    /// On a fake clock a slow push could span a move on every try and never get through, which says nothing about the
    /// registry, so while a client pushes again after a failure the clock waits for it.
    /// </summary>
    [Theory]
    [MemberData(nameof(GarbageCollectionTests.Drivers), MemberType = typeof(GarbageCollectionTests))]
    public async Task PushesAndTagDeletesRacingCollectionsNeverLeaveATagWithMissingContent(string driver)
    {
        await using var gc = await GcServer.StartAsync(driver, "--Registry:Gc:GracePeriod", "00:01:00", "--Registry:Gc:UntaggedAfter", "00:01:00");
        var shared = Enumerable.Range(0, 8).Select(i => OciHttp.RandomBytes(2048, 1000 + i)).ToArray();
        var failures = new ConcurrentQueue<string>();
        var retries = 0;
        var done = new CancellationTokenSource();

        var collections = 0;
        long swept = 0;
        var moves = 0; // how often the clock moved, counted after each move
        var retrying = new bool[Clients]; // set after a failed attempt until the push is over
        var loop = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                if (Enumerable.Range(0, Clients).Any(c => Volatile.Read(ref retrying[c])))
                {
                    await Task.Delay(2);
                    continue;
                }
                gc.Clock.Advance(TimeSpan.FromSeconds(90));
                Interlocked.Increment(ref moves);
                swept += (await gc.CollectAsync()).Removed["blobs"].Count;
                collections++;
            }
        });

        var clients = Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            try { await PushAndDeleteAsync(c); }
            finally { Volatile.Write(ref retrying[c], false); }
        })));
        try { await clients; }
        finally
        {
            await done.CancelAsync();
            await loop;
        }

        async Task PushAndDeleteAsync(int c)
        {
            using var client = gc.Server.CreateClient();
            var repository = $"race/r{c % Repositories}";
            for (var k = 0; k < OperationsPerClient; k++)
            {
                if (k % 4 == 3)
                {
                    using var deleted = await client.DeleteAsync($"v2/{repository}/manifests/c{c}-{(k - 1) % 3}");
                    if (deleted.StatusCode is not (HttpStatusCode.Accepted or HttpStatusCode.NotFound))
                        failures.Enqueue($"DELETE tag: {(int)deleted.StatusCode} {await deleted.Content.ReadAsStringAsync()}");
                    continue;
                }
                byte[][] layers = [shared[(c + k) % 8], shared[(c + 3 * k + 1) % 8], OciHttp.RandomBytes(1024, c * 100 + k)];
                // A move may slip in between the loop's look at the flags and the flag set here, so an attempt can
                // span one more move after a failure; the one after that cannot span any.
                for (var attempt = 1; ; attempt++)
                {
                    var began = Volatile.Read(ref moves);
                    var outcome = await PushAsync(client, repository, $"c{c}-{k % 3}", layers, $"{c}-{k}");
                    // The loop collects only after counting its move, and moves only after the last collection ended:
                    // an attempt that saw no count change raced at most a collection that began before it did, whose
                    // cut-off lies a grace period before anything the attempt touched.
                    var spanned = Volatile.Read(ref moves) != began;
                    if (outcome is null) break;
                    if (outcome != "MANIFEST_BLOB_UNKNOWN" || !spanned || attempt == 3)
                    {
                        failures.Enqueue($"{outcome} (attempt {attempt}, {(spanned ? "the clock moved during it" : "the clock did not move during it")})");
                        break;
                    }
                    Interlocked.Increment(ref retries);
                    Volatile.Write(ref retrying[c], true);
                }
                Volatile.Write(ref retrying[c], false);
            }
        }

        // And once more after everything settled: what the tags reach must survive any number of collections.
        gc.Clock.Advance(TimeSpan.FromHours(1));
        await gc.CollectAsync();
        Assert.Empty(failures);
        using var reader = gc.Server.CreateClient();
        var tags = 0;
        for (var r = 0; r < Repositories; r++)
        {
            var list = await reader.GetFromJsonAsync<JsonObject>($"v2/race/r{r}/tags/list");
            foreach (var tag in list!["tags"]!.AsArray())
            {
                await reader.AssertWholeAsync($"race/r{r}", tag!.GetValue<string>());
                tags++;
            }
        }
        Assert.True(tags >= Clients, $"only {tags} tags left");
        Assert.True(collections >= 2 && swept > 0, $"{collections} collections swept {swept} blobs ({retries} pushes again): the race was not exercised");
    }

    /// <summary>One push the way a client does it: HEAD each blob, upload the missing ones, PUT the manifest. Null when it worked, else the error.</summary>
    private static async Task<string?> PushAsync(HttpClient client, string repository, string tag, byte[][] layers, string configSeed)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{configSeed}\"}}");
        var descriptors = new JsonArray();
        foreach (var blob in layers.Prepend(config))
        {
            var digest = OciHttp.Sha256(blob);
            using (var head = new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}"))
            using (var headed = await client.SendAsync(head))
            {
                if (headed.StatusCode != HttpStatusCode.OK)
                {
                    using var posted = await client.PostAsync($"v2/{repository}/blobs/uploads/?digest={digest}", new ByteArrayContent(blob));
                    if (posted.StatusCode != HttpStatusCode.Created) return $"upload: {(int)posted.StatusCode} {await posted.Content.ReadAsStringAsync()}";
                }
            }
            if (blob != config) descriptors.Add(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, blob.Length));
        }
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", OciHttp.Sha256(config), config.Length),
            ["layers"] = descriptors,
        }.ToJsonString());
        using var put = await client.PutManifestAsync(repository, tag, manifest, OciHttp.OciManifest);
        if (put.StatusCode == HttpStatusCode.Created) return null;
        var body = await put.Content.ReadAsStringAsync();
        if (put.StatusCode == HttpStatusCode.BadRequest && JsonDocument.Parse(body).RootElement.GetProperty("errors")[0].GetProperty("code").GetString() == "MANIFEST_BLOB_UNKNOWN")
            return "MANIFEST_BLOB_UNKNOWN";
        return $"manifest: {(int)put.StatusCode} {body}";
    }

    /// <summary>
    /// The store (filesystem, real bytes on disk as du counts them) holds a base of 16 images of 4 × 1 MiB layers; 200
    /// changes then push 3 × 1 MiB unique layers each and expire. One collection brings the disk back to within 5 %.
    /// What stays is folders a filesystem never shrinks (one per change id, blob prefix folders first used by the
    /// changes' blobs) and the folder of use records.
    /// </summary>
    [Fact]
    public async Task OneCollectionAfterTwoHundredExpiredChangesGivesTheDiskBack()
    {
        const int MiB = 1024 * 1024;
        await using var gc = await GcServer.StartAsync("filesystem", "--Changes:ExpiredRetention", "00:01:00");
        using var client = gc.Server.CreateClient();
        client.Timeout = TimeSpan.FromMinutes(5);
        for (var i = 0; i < 16; i++)
            await client.PushImageOfAsync($"base/app{i}", "latest", Enumerable.Range(0, 4).Select(l => OciHttp.RandomBytes(MiB, i * 10 + l)), $"base{i}");
        var before = await DiskUsageAsync(gc.Server.StorageRoot);

        await Parallel.ForEachAsync(Enumerable.Range(0, 200), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (change, _) =>
        {
            using var pusher = gc.Server.CreateClient();
            await pusher.PutChangeAsync($"c{change}", HttpStatusCode.Created, ttl: "1h");
            await pusher.PushImageOfAsync($"changes/c{change}/base/app{change % 16}", "latest",
                Enumerable.Range(0, 3).Select(l => OciHttp.RandomBytes(MiB, 100_000 + change * 10 + l)), $"change{change}");
        });
        var full = await DiskUsageAsync(gc.Server.StorageRoot);
        Assert.True(full - before >= 600L * MiB, $"the changes added only {full - before} bytes");

        gc.Clock.Advance(TimeSpan.FromHours(4)); // expired, and past the grace period
        var report = await gc.CollectAsync();
        var after = await DiskUsageAsync(gc.Server.StorageRoot);
        Assert.Equal(200, report.Removed["overlays"].Count);
        Assert.Equal(3 * 200 + 2 * 200, report.Removed["blobs"].Count); // layers, configs and manifests
        Assert.True(after <= before * 1.05, $"{after} bytes on disk after the collection, {before} before the changes ({full} with them)");
        for (var i = 0; i < 16; i++) await client.AssertWholeAsync($"base/app{i}", "latest");
    }

    /// <summary>Bytes allocated on disk below <paramref name="path"/>, files and folders, as du counts them.</summary>
    private static async Task<long> DiskUsageAsync(string path)
    {
        using var du = Process.Start(new ProcessStartInfo("du", ["-s", "-B1", path]) { RedirectStandardOutput = true })!;
        var output = await du.StandardOutput.ReadToEndAsync();
        await du.WaitForExitAsync();
        Assert.Equal(0, du.ExitCode);
        return long.Parse(output.Split('\t')[0], System.Globalization.CultureInfo.InvariantCulture);
    }
}
