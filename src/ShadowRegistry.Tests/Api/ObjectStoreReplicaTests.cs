using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Hosting;
using ShadowRegistry.Tests.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// Two registry servers (replicas) over one bucket or container of an emulator, configured as an operator would
/// (Registry:Storage:S3:* / Registry:Storage:Azure:*): an upload started on one is continued on the other, every
/// request to the other replica than the previous one, and images pushed through one are pulled through the other.
/// </summary>
public sealed class ObjectStoreReplicaTests
{
    public static TheoryData<string> Drivers => ObjectStores.Drivers;

    /// <summary>The arguments pointing a server at a fresh bucket or container of the driver's emulator.</summary>
    private static string[] StoreArguments(string driver) => ObjectStores.Arguments(driver);

    [SkippableTheory]
    [MemberData(nameof(Drivers))]
    public async Task AChunkedUploadAlternatesBetweenReplicasAndBothServeTheBlob(string driver)
    {
        var arguments = StoreArguments(driver);
        await using var a = await RegistryServer.StartAsync(arguments);
        await using var b = await RegistryServer.StartAsync(arguments);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();
        HttpClient[] replicas = [clientA, clientB];

        // Over one S3 part (5 MiB) and many Azure blocks: 7 chunks of 1 MiB, each to the other replica.
        var content = OciHttp.RandomBytes(7 * 1024 * 1024 + 4321, 91);
        var digest = OciHttp.Sha256(content);
        using var start = await clientA.PostAsync("v2/replicas/app/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        const int chunk = 1024 * 1024;
        var turn = 1;
        for (var offset = 0; offset + chunk < content.Length; offset += chunk, turn++)
            await OciHttp.PatchChunkAsync(replicas[turn % 2], location, content, offset, chunk);
        var done = (turn - 1) * chunk;
        using (var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={digest}"))
        {
            Content = new ByteArrayContent(content, done, content.Length - done),
        })
        using (var finished = await replicas[turn % 2].SendAsync(put))
        {
            await finished.ExpectAsync(HttpStatusCode.Created);
        }
        foreach (var client in replicas)
        {
            using var get = await client.GetAsync($"v2/replicas/app/blobs/{digest}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        }
        using var gone = await clientA.GetAsync(location);
        await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
    }

    [SkippableTheory]
    [MemberData(nameof(Drivers))]
    public async Task ImagesPushedThroughOneReplicaArePulledThroughTheOtherAndBothAreReady(string driver)
    {
        var arguments = StoreArguments(driver);
        await using var a = await RegistryServer.StartAsync(arguments);
        await using var b = await RegistryServer.StartAsync(arguments);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        var (manifest, digest) = await clientA.PushImageAsync("replicas/image", "v1", seed: 92);
        using (var get = await clientB.GetAsync("v2/replicas/image/manifests/v1"))
        {
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(manifest, await get.Content.ReadAsByteArrayAsync());
            Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());
        }
        await clientB.PushImageAsync("replicas/image", "v2", seed: 93);
        using (var tags = await clientA.GetAsync("v2/replicas/image/tags/list"))
        {
            await tags.ExpectAsync(HttpStatusCode.OK);
            Assert.Contains("\"v2\"", await tags.Content.ReadAsStringAsync());
        }
        foreach (var client in new[] { clientA, clientB })
        {
            using var ready = await client.GetAsync("readyz");
            await ready.ExpectAsync(HttpStatusCode.OK);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Drivers))]
    public async Task WhileOneReplicaWritesToASessionTheOtherGets416WithTheOffset(string driver)
    {
        var arguments = StoreArguments(driver);
        await using var a = await RegistryServer.StartAsync(arguments);
        await using var b = await RegistryServer.StartAsync(arguments);
        using var clientA = a.CreateClient();
        var content = OciHttp.RandomBytes(2000, 94);

        using var start = await clientA.PostAsync("v2/replicas/busy/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        await OciHttp.PatchChunkAsync(clientA, location, content, 0, 1000);

        // B is in the middle of a chunk: its driver holds the session's writer (the blob's lease on Azure, the
        // session state's lease on S3), so A's PATCH is refused with the offset the session really has.
        var id = location.ToString().Split('?')[0].Split('/')[^1];
        await using (var holding = await b.Services.GetRequiredService<IStorageDriver>().WriterAsync($"/uploads/{id}/data", append: true, CancellationToken.None))
        {
            using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content, 1000, 1000) };
            patch.Content.Headers.TryAddWithoutValidation("Content-Range", "1000-1999");
            using var refused = await clientA.SendAsync(patch);
            await refused.ExpectErrorAsync(HttpStatusCode.RequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID");
            Assert.Equal("0-999", refused.Headers.GetValues("Range").Single());
        }
        await OciHttp.PatchChunkAsync(clientA, location, content, 1000, 1000);
    }

    [SkippableFact]
    public async Task WrongCredentialsStopTheStartWithTheReason()
    {
        ObjectStoreEmulator.SkipUnlessAvailable(Azurite.Binary);
        var wrongKey = Azurite.ConnectionString.Replace(Azurite.AccountKey, Convert.ToBase64String(new byte[64]), StringComparison.Ordinal);
        using var scratch = new ScratchDirectory("wrong-key");
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await using var app = RegistryApp.Build(["--urls", "http://127.0.0.1:0", "--Registry:StorageRoot", scratch.Path,
                "--Registry:Storage:Driver", "azure", "--Registry:Storage:Azure:ConnectionString", wrongKey]);
            await app.StartAsync();
        });
        Assert.StartsWith("azure storage cannot be used: azure: storage unavailable (403", refused.Message);
    }
}
