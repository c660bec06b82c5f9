using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// Two replicas over one store, as operators run them behind a load balancer: every client's requests alternate
/// between them (a proxy per client that sends each request to the other replica than the one before, upload chunks
/// included), and a replica killed in the middle of a chunk loses nothing acknowledged.
/// </summary>
public sealed class ReplicaRoundRobinTests(ITestOutputHelper output)
{
    private const int Clients = 16;
    private const int SkopeoClients = 4;

    /// <summary>Shared by every HTTP client: the same layer pushed at once through both replicas.</summary>
    private static readonly byte[] SharedLayer = OciHttp.RandomBytes(512 * 1024, 1400);

    public static TheoryData<string> Drivers => ObjectStores.AllDrivers;

    /// <summary>Two in-process replicas on one new store of the driver; the scratch folder holds a filesystem store.</summary>
    private static async Task<(RegistryServer A, RegistryServer B)> StartReplicasAsync(string driver, ScratchDirectory scratch)
    {
        if (driver == ObjectStores.Filesystem) return (await RegistryServer.StartOnAsync(scratch.Path), await RegistryServer.StartOnAsync(scratch.Path));
        var store = ObjectStores.Arguments(driver);
        return (await RegistryServer.StartAsync(store), await RegistryServer.StartAsync(store));
    }

    [SkippableTheory]
    [MemberData(nameof(Drivers))]
    public async Task SixteenClientsPushAndPullThroughAlternatingReplicas(string driver)
    {
        ExternalTool.Require("skopeo");
        using var scratch = new ScratchDirectory("replicas");
        var (serverA, serverB) = await StartReplicasAsync(driver, scratch);
        await using var a = serverA;
        await using var b = serverB;
        await using var sandbox = new ContainerToolSandbox("replicas");
        var proxies = new List<AlternatingProxy>();
        try
        {
            for (var i = 0; i < Clients; i++) proxies.Add(await AlternatingProxy.StartAsync(a.BaseAddress, b.BaseAddress));
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var clients = proxies.Select((proxy, i) => Task.Run(async () =>
            {
                await gate.Task;
                if (i < SkopeoClients) await SkopeoPushAndPullAsync(sandbox, proxy, i);
                else await HttpPushAndPullAsync(proxy, i);
            })).ToArray();
            gate.SetResult();
            await Task.WhenAll(clients);

            // Strict alternation per client: both replicas served every client, each half of its requests.
            foreach (var proxy in proxies)
            {
                Assert.True(proxy.Forwarded[0] > 3 && Math.Abs(proxy.Forwarded[0] - proxy.Forwarded[1]) <= 1,
                    $"requests per replica: {proxy.Forwarded[0]} and {proxy.Forwarded[1]}");
            }
        }
        finally
        {
            foreach (var proxy in proxies) await proxy.DisposeAsync();
        }
    }

    /// <summary>A config, the shared layer (monolithic) and a layer of its own in chunks, a manifest; then all read back.</summary>
    private static async Task HttpPushAndPullAsync(AlternatingProxy proxy, int client)
    {
        using var http = proxy.CreateClient();
        var repository = $"replicas/http-{client}";
        var config = System.Text.Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"client\":{client}}}");
        var own = OciHttp.RandomBytes(768 * 1024 + client, 1400 + client);
        var blobs = new Dictionary<string, byte[]>
        {
            [await http.PushBlobAsync(repository, config)] = config,
            [await http.PushBlobAsync(repository, SharedLayer)] = SharedLayer,
            // POST, four PATCHes and the PUT: six requests, three to each replica.
            [await http.PushBlobChunkedAsync(repository, own, 200 * 1024)] = own,
        };
        var manifest = System.Text.Encoding.UTF8.GetBytes(new System.Text.Json.Nodes.JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", OciHttp.Sha256(config), config.Length),
            ["layers"] = new System.Text.Json.Nodes.JsonArray(
                OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", OciHttp.Sha256(SharedLayer), SharedLayer.Length),
                OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", OciHttp.Sha256(own), own.Length)),
        }.ToJsonString());
        using (var put = await http.PutManifestAsync(repository, "v1", manifest, OciHttp.OciManifest))
        {
            await put.ExpectAsync(HttpStatusCode.Created);
            Assert.Equal(OciHttp.Sha256(manifest), put.Headers.GetValues("Docker-Content-Digest").Single());
        }

        // Twice each, so each is read through both replicas.
        for (var round = 0; round < 2; round++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/v1");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
            using var get = await http.SendAsync(request);
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(manifest, await get.Content.ReadAsByteArrayAsync());
            foreach (var (digest, content) in blobs)
            {
                using var blob = await http.GetAsync($"v2/{repository}/blobs/{digest}");
                await blob.ExpectAsync(HttpStatusCode.OK);
                var bytes = await blob.Content.ReadAsByteArrayAsync();
                Assert.True(content.AsSpan().SequenceEqual(bytes), $"{repository} blob {digest} differs");
            }
        }
    }

    /// <summary>skopeo copies an image of its own in through its proxy and back out, byte for byte.</summary>
    private async Task SkopeoPushAndPullAsync(ContainerToolSandbox sandbox, AlternatingProxy proxy, int client)
    {
        var skopeo = sandbox.Skopeo(output);
        var (source, image) = OciImageLayout.WriteRandomImage(sandbox.Folder($"source-{client}"), "v1", seed: 1500 + client, 1 << 20, 256 << 10);
        var reference = $"docker://{proxy.HostPort}/replicas/skopeo-{client}:v1";
        var pushedDigest = sandbox.FilePath($"pushed-{client}.digest");
        await skopeo.RunAsync("copy", "--dest-tls-verify=false", "--digestfile", pushedDigest, $"oci:{source.Root}:v1", reference);
        Assert.Equal(image.ManifestDigest, File.ReadAllText(pushedDigest).Trim());

        var destination = new OciImageLayout(sandbox.Folder($"pulled-{client}"));
        await skopeo.RunAsync("copy", "--src-tls-verify=false", "--preserve-digests", reference, $"oci:{destination.Root}:copied");
        var copied = destination.ReadImage("copied");
        Assert.Equal(image.ManifestDigest, copied.ManifestDigest);
        Assert.Equal(image.Manifest, copied.Manifest);
        foreach (var digest in image.AllDigests)
            Assert.True(source.ReadBlob(digest).AsSpan().SequenceEqual(destination.ReadBlob(digest)), $"skopeo client {client}: blob {digest} differs after the round trip");
    }

    [SkippableTheory]
    [MemberData(nameof(Drivers))]
    public async Task AReplicaKilledMidChunkLosesNothingAcknowledgedAndTheSessionResumesOnTheOther(string driver)
    {
        using var scratch = new ScratchDirectory("killed");
        string[] store = driver switch
        {
            ObjectStores.Filesystem => ["--Registry:StorageRoot", scratch.Path],
            // The shortest lease Azure allows: the killed replica's lease on the session's blob runs out in 15 s.
            ObjectStores.Azure => [.. ObjectStores.Arguments(driver), "--Registry:Storage:Azure:WriterLease", "00:00:15"],
            _ => ObjectStores.Arguments(driver),
        };
        // On S3 the survivor's clock is a fake one starting now: the killed replica's lease (in the session's state
        // object, 60 s) runs out when the test moves it on, not after a minute of waiting. (Azure's lease is kept by
        // the service, on its own clock; the filesystem's lock dies with the process.)
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        Action<IServiceCollection>? fakeClock = driver == ObjectStores.S3 ? services => services.AddSingleton<TimeProvider>(clock) : null;
        await using var a = await RegistryProcess.StartAsync(store);
        await using var b = driver == ObjectStores.Filesystem
            ? await RegistryServer.StartOnAsync(scratch.Path, fakeClock)
            : await RegistryServer.StartAsync(fakeClock, store);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        const int chunk = 1024 * 1024;
        var content = OciHttp.RandomBytes(3 * chunk + 777, 1600);
        var digest = OciHttp.Sha256(content);
        using var start = await clientA.PostAsync("v2/replicas/killed/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        await OciHttp.PatchChunkAsync(clientA, location, content, 0, chunk);
        await OciHttp.PatchChunkAsync(clientB, location, content, chunk, chunk);

        // The third chunk goes to A, which gets half of it and is then killed while it reads the rest.
        var before = await ReceivedBytesAsync(clientA);
        var rest = new TaskCompletionSource();
        var inFlight = Task.Run(async () =>
        {
            using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new HalfThenWaitContent(content, 2 * chunk, chunk, rest.Task) };
            patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{2 * chunk}-{3 * chunk - 1}");
            patch.Content.Headers.ContentLength = chunk;
            using var response = await clientA.SendAsync(patch);
            return response.StatusCode;
        });
        var deadline = Stopwatch.StartNew();
        while (await ReceivedBytesAsync(clientA) - before < chunk / 2)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "replica A did not read half of the chunk within 60 s");
            Assert.False(inFlight.IsCompleted, $"the half-sent chunk was answered: {(inFlight.IsCompletedSuccessfully ? inFlight.Result : inFlight.Exception)}");
            await Task.Delay(50);
        }
        a.Kill();
        // The rest of the body now meets a closed connection.
        rest.TrySetResult();
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => inFlight);

        // B reports what the store holds. Nothing acknowledged is lost; on the object stores nothing more is there
        // either (blocks or bytes not committed are not part of the object), while on the filesystem the prefix of the
        // chunk that A wrote before it died is: bytes the client sent, in order. A client resumes from the offset the
        // registry reports, as the OCI spec has it (GET the upload, go on from its Range); the digest checks it all.
        int offset;
        using (var status = await clientB.GetAsync(location))
        {
            await status.ExpectAsync(HttpStatusCode.NoContent);
            offset = int.Parse(status.Headers.GetValues("Range").Single().Split('-')[1], System.Globalization.CultureInfo.InvariantCulture) + 1;
            if (driver == ObjectStores.Filesystem) Assert.InRange(offset, 2 * chunk, 3 * chunk - 1);
            else Assert.Equal(2 * chunk, offset);
        }

        // The client sends the rest of the third chunk to B. Until the dead replica's hold on the session runs out (at
        // once on the filesystem, whose lock died with the process; on S3 when B's clock passes the lease; on Azure
        // when Azurite ends the 15 s lease) B answers 416 with the offset, as for any busy session.
        clock.SetUtcNow(DateTimeOffset.UtcNow + TimeSpan.FromSeconds(61));
        deadline.Restart();
        while (true)
        {
            using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content, offset, 3 * chunk - offset) };
            patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{3 * chunk - 1}");
            using var response = await clientB.SendAsync(patch);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                Assert.Equal($"0-{3 * chunk - 1}", response.Headers.GetValues("Range").Single());
                break;
            }
            await response.ExpectErrorAsync(HttpStatusCode.RequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID");
            Assert.Equal($"0-{offset - 1}", response.Headers.GetValues("Range").Single());
            Assert.True(driver == ObjectStores.Azure && deadline.Elapsed < TimeSpan.FromSeconds(60),
                $"{driver}: the session stayed busy {deadline.Elapsed.TotalSeconds:0} s after the replica holding it was killed");
            await Task.Delay(500);
        }
        output.WriteLine($"{driver}: the session resumed on the other replica {deadline.Elapsed.TotalSeconds:0.0} s after the kill");

        using (var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={digest}"))
        {
            Content = new ByteArrayContent(content, 3 * chunk, content.Length - 3 * chunk),
        })
        using (var finished = await clientB.SendAsync(put))
        {
            await finished.ExpectAsync(HttpStatusCode.Created);
        }
        using var get = await clientB.GetAsync($"v2/replicas/killed/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        var pulled = await get.Content.ReadAsByteArrayAsync();
        Assert.True(content.AsSpan().SequenceEqual(pulled), "the blob differs from what was pushed");
    }

    /// <summary>Request body bytes the replica has read so far, over all routes (its /metrics).</summary>
    private static async Task<double> ReceivedBytesAsync(HttpClient client) =>
        (await MetricsScrape.GetAsync(client)).Series.Where(s => s.Name == "shadowregistry_http_received_bytes_total").Sum(s => s.Value);

    /// <summary>A request body that sends the first half of its bytes, then waits (for the kill) before the rest.</summary>
    private sealed class HalfThenWaitContent(byte[] content, int offset, int size, Task rest) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(content.AsMemory(offset, size / 2));
            await stream.FlushAsync();
            await rest;
            await stream.WriteAsync(content.AsMemory(offset + size / 2, size - size / 2));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = size;
            return true;
        }
    }
}
