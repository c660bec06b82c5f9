using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// Two registry processes sharing one store (a storage root, or one in-memory store standing for a bucket): an upload
/// session lives in the store, so either can continue what the other started.
/// </summary>
public sealed class SharedStorageUploadTests
{
    /// <summary>Two servers on one store of the given driver; the scratch folder (if any) goes with the last one.</summary>
    private static async Task<(RegistryServer A, RegistryServer B, IDisposable Scratch)> StartPairAsync(string driver)
    {
        var scratch = new ScratchDirectory("shared");
        if (driver == FilesystemDriver.DriverName)
            return (await RegistryServer.StartOnAsync(scratch.Path), await RegistryServer.StartOnAsync(scratch.Path), scratch);
        var store = new InMemoryStore();
        void Shared(IServiceCollection services) => services.AddSingleton<IStorageDriver>(new InMemoryDriver(store));
        return (await RegistryServer.StartAsync(Shared, "--Registry:Storage:Driver", "inmemory"),
            await RegistryServer.StartAsync(Shared, "--Registry:Storage:Driver", "inmemory"), scratch);
    }

    [Theory]
    [InlineData(FilesystemDriver.DriverName)]
    [InlineData(InMemoryDriver.DriverName)]
    public async Task ASessionStartedOnOneProcessIsContinuedAndFinishedAcrossBoth(string driver)
    {
        var (serverA, serverB, scratch) = await StartPairAsync(driver);
        using var _ = scratch;
        await using var a = serverA;
        await using var b = serverB;
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();
        var content = OciHttp.RandomBytes(300_000, 71);
        var digest = OciHttp.Sha256(content);

        using var start = await clientA.PostAsync("v2/shared/app/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;

        // Visible on B at once, and where it stands.
        using (var status = await clientB.GetAsync(location))
        {
            await status.ExpectAsync(HttpStatusCode.NoContent);
            Assert.Equal("0-0", status.Headers.GetValues("Range").Single());
        }

        await OciHttp.PatchChunkAsync(clientB, location, content, 0, 100_000);
        await OciHttp.PatchChunkAsync(clientA, location, content, 100_000, 100_000);
        using (var status = await clientB.GetAsync(location))
        {
            await status.ExpectAsync(HttpStatusCode.NoContent);
            Assert.Equal("0-199999", status.Headers.GetValues("Range").Single());
        }

        // A has no running hash for B's part: it re-reads the upload, and the blob is still right.
        using (var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={digest}"))
        {
            Content = new ByteArrayContent(content, 200_000, content.Length - 200_000),
        })
        using (var finished = await clientA.SendAsync(put))
        {
            await finished.ExpectAsync(HttpStatusCode.Created);
            Assert.Equal(digest, finished.Headers.GetValues("Docker-Content-Digest").Single());
        }
        foreach (var client in new[] { clientA, clientB })
        {
            using var get = await client.GetAsync($"v2/shared/app/blobs/{digest}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        }
        // The session is over on both.
        using var gone = await clientB.GetAsync(location);
        await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
    }

    [Theory]
    [InlineData(FilesystemDriver.DriverName)]
    [InlineData(InMemoryDriver.DriverName)]
    public async Task WhileOneProcessWritesToASessionTheOtherGets416WithTheOffset(string driver)
    {
        var (serverA, serverB, scratch) = await StartPairAsync(driver);
        using var _ = scratch;
        await using var a = serverA;
        await using var b = serverB;
        using var clientA = a.CreateClient();
        var content = OciHttp.RandomBytes(2000, 72);

        using var start = await clientA.PostAsync("v2/shared/busy/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        await OciHttp.PatchChunkAsync(clientA, location, content, 0, 1000);

        // B is in the middle of a chunk: it holds the session's data through its driver.
        var id = location.ToString().Split('/')[^1];
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
}
