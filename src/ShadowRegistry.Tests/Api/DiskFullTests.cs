using System.Net;
using System.Text;
using System.Text.Json;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// A registry whose storage root is a small tmpfs, filled for real: a full disk is a 507 with an OCI error body, the
/// failed write is rolled back, and the registry carries on once space is freed. Filesystem driver only: the full
/// disk is the subject.
/// </summary>
public sealed class DiskFullTests
{
    private const long TmpfsBytes = 4 * 1024 * 1024;

    private static async Task ExpectStorageFullAsync(HttpResponseMessage response)
    {
        await response.ExpectErrorAsync(HttpStatusCode.InsufficientStorage, "UNAVAILABLE");
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("storage is full", body.RootElement.GetProperty("errors")[0].GetProperty("message").GetString());
    }

    private static async Task<HttpResponseMessage> PatchAsync(HttpClient client, Uri location, byte[] content, int offset, int length)
    {
        using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content, offset, length) };
        patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{offset + length - 1}");
        return await client.SendAsync(patch);
    }

    [TmpfsFact]
    public async Task ChunkThatFillsTheDiskIs507AndTheSessionResumesOnceSpaceIsFreed()
    {
        using var tmpfs = TmpfsMount.Create(TmpfsBytes);
        await using var server = await RegistryServer.StartOnAsync(tmpfs.Path);
        using var client = server.CreateClient();
        var content = OciHttp.RandomBytes(1024 * 1024 + 4096, 40);
        const int firstChunk = 64 * 1024;

        using var start = await client.PostAsync("v2/full/chunked/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        using (var first = await PatchAsync(client, location, content, 0, firstChunk))
        {
            await first.ExpectAsync(HttpStatusCode.Accepted);
            Assert.Equal($"0-{firstChunk - 1}", first.Headers.GetValues("Range").Single());
        }

        var filler = tmpfs.Fill("filler");
        using (var full = await PatchAsync(client, location, content, firstChunk, content.Length - firstChunk))
            await ExpectStorageFullAsync(full);

        async Task ExpectOffsetAsync(int size)
        {
            using var status = await client.GetAsync(location);
            await status.ExpectAsync(HttpStatusCode.NoContent);
            Assert.Equal($"0-{size - 1}", status.Headers.GetValues("Range").Single());
        }

        // The failed chunk is gone: the session stands where the client was last told.
        await ExpectOffsetAsync(firstChunk);

        // So does a final PUT carrying the rest.
        var digest = OciHttp.Sha256(content);
        HttpRequestMessage FinalPut()
        {
            var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={digest}"))
            {
                Content = new ByteArrayContent(content, firstChunk, content.Length - firstChunk),
            };
            put.Content.Headers.TryAddWithoutValidation("Content-Range", $"{firstChunk}-{content.Length - 1}");
            return put;
        }
        using (var request = FinalPut())
        using (var fullPut = await client.SendAsync(request))
            await ExpectStorageFullAsync(fullPut);
        await ExpectOffsetAsync(firstChunk);
        using (var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/full/chunked/blobs/{digest}")))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);

        File.Delete(filler);
        using (var resumed = await PatchAsync(client, location, content, firstChunk, 4096))
        {
            await resumed.ExpectAsync(HttpStatusCode.Accepted);
            Assert.Equal($"0-{firstChunk + 4096 - 1}", resumed.Headers.GetValues("Range").Single());
        }
        using (var request = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={digest}"))
        {
            Content = new ByteArrayContent(content, firstChunk + 4096, content.Length - firstChunk - 4096),
        })
        using (var put = await client.SendAsync(request))
        {
            await put.ExpectAsync(HttpStatusCode.Created);
            Assert.Equal(digest, put.Headers.GetValues("Docker-Content-Digest").Single());
        }
        using var get = await client.GetAsync($"v2/full/chunked/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
    }

    [TmpfsFact]
    public async Task UploadsAndManifestPushesOnAFullDiskLeaveNothingVisible()
    {
        using var tmpfs = TmpfsMount.Create(TmpfsBytes);
        await using var server = await RegistryServer.StartOnAsync(tmpfs.Path);
        using var client = server.CreateClient();
        var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\"}");
        var configDigest = await client.PushBlobAsync("full/mono", config);
        var manifest = Encoding.UTF8.GetBytes(new System.Text.Json.Nodes.JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", configDigest, config.Length),
            ["layers"] = new System.Text.Json.Nodes.JsonArray(),
        }.ToJsonString());

        var filler = tmpfs.Fill("filler");

        // A monolithic upload: 507, and neither a blob nor a session nor a temporary file is left.
        var blob = OciHttp.RandomBytes(512 * 1024, 41);
        var blobDigest = OciHttp.Sha256(blob);
        using (var post = await client.PostAsync($"v2/full/mono/blobs/uploads/?digest={blobDigest}", new ByteArrayContent(blob)))
            await ExpectStorageFullAsync(post);
        using (var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/full/mono/blobs/{blobDigest}")))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.False(File.Exists(Path.Combine(server.StorageRoot, "blobs", "sha256", blobDigest[7..9], blobDigest[7..])));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(server.StorageRoot, "uploads")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(server.StorageRoot, "tmp")));

        // A manifest push: 507, and the tag does not resolve.
        using (var put = await client.PutManifestAsync("full/mono", "v1", manifest, OciHttp.OciManifest))
            await ExpectStorageFullAsync(put);
        using (var pull = await client.GetAsync("v2/full/mono/manifests/v1"))
            await pull.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // With space again, the same pushes go through.
        File.Delete(filler);
        Assert.Equal(blobDigest, await client.PushBlobAsync("full/mono", blob));
        using (var put = await client.PutManifestAsync("full/mono", "v1", manifest, OciHttp.OciManifest))
            await put.ExpectAsync(HttpStatusCode.Created);
        using var pulled = await client.GetAsync("v2/full/mono/manifests/v1");
        await pulled.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(manifest, await pulled.Content.ReadAsByteArrayAsync());
    }
}
