using System.Net;
using System.Net.Http.Headers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

public abstract class BlobApiTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    [SkippableFact]
    public async Task VersionCheckAnswersWithApiVersionHeader()
    {
        using var response = await client.GetAsync("v2/");
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal("registry/2.0", response.Headers.GetValues("Docker-Distribution-API-Version").Single());
    }

    [SkippableFact]
    public async Task MonolithicUploadIsReadableWithHeadAndGet()
    {
        var content = OciHttp.RandomBytes(300_000, 1);
        var digest = await client.PushBlobAsync("blobs/mono", content);

        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/blobs/mono/blobs/{digest}"));
        await head.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content.Length, head.Content.Headers.ContentLength);
        Assert.Equal(digest, head.Headers.GetValues("Docker-Content-Digest").Single());

        using var get = await client.GetAsync($"v2/blobs/mono/blobs/{digest}");
        // As a file result always did: the stored blob's modification time.
        Assert.NotNull(get.Content.Headers.LastModified);
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());
    }

    [SkippableFact]
    public async Task RangeRequestReturnsPartialContent()
    {
        var content = OciHttp.RandomBytes(10_000, 2);
        var digest = await client.PushBlobAsync("blobs/range", content);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/blobs/range/blobs/{digest}");
        request.Headers.Range = new RangeHeaderValue(100, 1099);
        using var response = await client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.PartialContent);
        Assert.Equal(content[100..1100], await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("bytes 100-1099/10000", response.Content.Headers.ContentRange!.ToString());
    }

    [SkippableFact]
    public async Task UnknownBlobIsBlobUnknown()
    {
        var digest = OciHttp.Sha256([1, 2, 3]);
        using var get = await client.GetAsync($"v2/blobs/unknown/blobs/{digest}");
        await get.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/blobs/unknown/blobs/{digest}"));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }

    [SkippableTheory]
    [InlineData("sha256:abc")]
    [InlineData("sha256:ZZ5f3c0a7e9b1d2c4f6e8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d")]
    [InlineData("md5:d41d8cd98f00b204e9800998ecf8427e")]
    [InlineData("notadigest")]
    public async Task MalformedDigestIsDigestInvalid(string digest)
    {
        using var get = await client.GetAsync($"v2/blobs/bad/blobs/{digest}");
        await get.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");
        using var post = await client.PostAsync($"v2/blobs/bad/blobs/uploads/?digest={digest}", new ByteArrayContent([1]));
        await post.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");
    }

    [SkippableFact]
    public async Task WrongDigestIsRejectedAndNothingIsStored()
    {
        // Own server (on the same driver): the shared one holds other tests' open upload sessions.
        await using var server = await RegistryServer.StartAsync(fixture.Arguments);
        using var client = server.CreateClient();
        var content = OciHttp.RandomBytes(5000, 3);
        var claimed = OciHttp.Sha256(OciHttp.RandomBytes(5000, 4));
        using var post = await client.PostAsync($"v2/blobs/wrong/blobs/uploads/?digest={claimed}", new ByteArrayContent(content));
        await post.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");

        foreach (var digest in new[] { claimed, OciHttp.Sha256(content) })
        {
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/blobs/wrong/blobs/{digest}"));
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        }
        Assert.Empty(await server.FilesBelowAsync("/uploads"));
        Assert.Empty(await server.FilesBelowAsync("/blobs"));
        Assert.Empty(await server.FilesBelowAsync("/tmp"));
    }

    [SkippableFact]
    public async Task BlobIsServedOnlyByRepositoriesItWasPushedOrMountedTo()
    {
        var content = OciHttp.RandomBytes(2000, 5);
        var digest = await client.PushBlobAsync("blobs/owner", content);

        using var other = await client.GetAsync($"v2/blobs/other/blobs/{digest}");
        await other.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");

        using var mount = await client.PostAsync($"v2/blobs/other/blobs/uploads/?mount={digest}&from=blobs/owner", null);
        await mount.ExpectAsync(HttpStatusCode.Created);
        Assert.Equal($"/v2/blobs/other/blobs/{digest}", mount.Headers.Location!.ToString());
        using var mounted = await client.GetAsync($"v2/blobs/other/blobs/{digest}");
        Assert.Equal(content, await mounted.Content.ReadAsByteArrayAsync());
    }

    [SkippableFact]
    public async Task MountOfAbsentBlobFallsBackToUploadSession()
    {
        var digest = OciHttp.Sha256(OciHttp.RandomBytes(100, 6));
        using var mount = await client.PostAsync($"v2/blobs/mount-target/blobs/uploads/?mount={digest}&from=blobs/nowhere", null);
        await mount.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Contains("/v2/blobs/mount-target/blobs/uploads/", mount.Headers.Location!.ToString());
        Assert.NotEmpty(mount.Headers.GetValues("Docker-Upload-UUID").Single());
    }

    [SkippableFact]
    public async Task DeleteUnlinksBlobFromRepository()
    {
        var content = OciHttp.RandomBytes(1000, 7);
        var digest = await client.PushBlobAsync("blobs/delete", content);
        using var delete = await client.DeleteAsync($"v2/blobs/delete/blobs/{digest}");
        await delete.ExpectAsync(HttpStatusCode.Accepted);
        using var get = await client.GetAsync($"v2/blobs/delete/blobs/{digest}");
        await get.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
        using var again = await client.DeleteAsync($"v2/blobs/delete/blobs/{digest}");
        await again.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
    }

    /// <summary>
    /// Larger than the two 1 MiB buffers a whole-blob GET is sent from and than an upload's copy buffers, and no
    /// multiple of either: every byte in place, with the headers a file result gives, and ranges and conditional
    /// requests (answered by the file result) unchanged.
    /// </summary>
    [SkippableFact]
    public async Task BlobLargerThanTheCopyBuffersIsServedWholeAndInRanges()
    {
        var content = OciHttp.RandomBytes(2 * 1024 * 1024 + 123_457, 7);
        var digest = await client.PushBlobAsync("blobs/large", content);

        using var get = await client.GetAsync($"v2/blobs/large/blobs/{digest}", HttpCompletionOption.ResponseHeadersRead);
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content.Length, get.Content.Headers.ContentLength);
        Assert.Equal("application/octet-stream", get.Content.Headers.ContentType!.MediaType);
        Assert.Equal("bytes", get.Headers.AcceptRanges.Single());
        Assert.Equal($"\"{digest}\"", get.Headers.ETag!.Tag);
        Assert.NotNull(get.Content.Headers.LastModified);
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());

        // Across the first buffer's end.
        using var range = new HttpRequestMessage(HttpMethod.Get, $"v2/blobs/large/blobs/{digest}");
        range.Headers.Range = new RangeHeaderValue(1024 * 1024 - 10, 1024 * 1024 + 9);
        using var partial = await client.SendAsync(range);
        await partial.ExpectAsync(HttpStatusCode.PartialContent);
        Assert.Equal(content[(1024 * 1024 - 10)..(1024 * 1024 + 10)], await partial.Content.ReadAsByteArrayAsync());

        using var conditional = new HttpRequestMessage(HttpMethod.Get, $"v2/blobs/large/blobs/{digest}");
        conditional.Headers.IfNoneMatch.Add(get.Headers.ETag);
        using var notModified = await client.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
    }

    /// <summary>Chunks larger than the copy buffers and of odd sizes, so writes and reads of the copy do not line up.</summary>
    [SkippableFact]
    public async Task ChunkedUploadLargerThanTheCopyBuffersKeepsEveryByte()
    {
        var content = OciHttp.RandomBytes(3 * 1024 * 1024 + 7, 8);
        var digest = await client.PushBlobChunkedAsync("blobs/large-chunked", content, 1024 * 1024 + 333_333);
        using var get = await client.GetAsync($"v2/blobs/large-chunked/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
    }

    [SkippableFact]
    public async Task EmptyBlobCanBePushedAndRead()
    {
        var digest = await client.PushBlobAsync("blobs/empty", []);
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/blobs/empty/blobs/{digest}"));
        await head.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(0, head.Content.Headers.ContentLength);
        using var get = await client.GetAsync($"v2/blobs/empty/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Empty(await get.Content.ReadAsByteArrayAsync());
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class BlobApiTestsOnFilesystem(RegistryServerFixture fixture) : BlobApiTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class BlobApiTestsInMemory(InMemoryRegistryServerFixture fixture) : BlobApiTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
