using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

public abstract class UploadApiTests(RegistryServerFixture fixture)
{
    protected readonly HttpClient client = fixture.Client;

    protected async Task<Uri> StartAsync(string repository)
    {
        using var start = await client.PostAsync($"v2/{repository}/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Equal("0-0", start.Headers.GetValues("Range").Single());
        Assert.Equal(start.Headers.GetValues("Docker-Upload-UUID").Single(), start.Headers.Location!.ToString().Split('/')[^1]);
        return start.Headers.Location!;
    }

    protected async Task<HttpResponseMessage> PatchAsync(Uri location, byte[] chunk, string? contentRange)
    {
        using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(chunk) };
        if (contentRange is not null) patch.Content.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        return await client.SendAsync(patch);
    }

    [SkippableFact]
    public async Task ChunkedUploadReportsProgressAndCommits()
    {
        var content = OciHttp.RandomBytes(3 * 1024 * 1024 + 17, 10);
        var digest = await client.PushBlobChunkedAsync("uploads/chunked", content, 1024 * 1024);
        using var get = await client.GetAsync($"v2/uploads/chunked/blobs/{digest}");
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
    }

    [SkippableFact]
    public async Task StatusShowsRangeAndPutMayCarryLastChunk()
    {
        var content = OciHttp.RandomBytes(4000, 11);
        var location = await StartAsync("uploads/status");
        using (var patched = await PatchAsync(location, content[..2500], "0-2499"))
        {
            await patched.ExpectAsync(HttpStatusCode.Accepted);
            Assert.Equal("0-2499", patched.Headers.GetValues("Range").Single());
        }
        using (var status = await client.GetAsync(location))
        {
            await status.ExpectAsync(HttpStatusCode.NoContent);
            Assert.Equal("0-2499", status.Headers.GetValues("Range").Single());
        }
        var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={OciHttp.Sha256(content)}"))
        {
            Content = new ByteArrayContent(content[2500..]),
        };
        put.Content.Headers.TryAddWithoutValidation("Content-Range", "2500-3999");
        using var finished = await client.SendAsync(put);
        await finished.ExpectAsync(HttpStatusCode.Created);
        Assert.Equal(OciHttp.Sha256(content), finished.Headers.GetValues("Docker-Content-Digest").Single());
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/uploads/status/blobs/{OciHttp.Sha256(content)}"));
        Assert.Equal(4000, head.Content.Headers.ContentLength);

        // The session is gone once committed.
        using var after = await client.GetAsync(location);
        await after.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
    }

    [SkippableFact]
    public async Task OutOfOrderChunkIsRangeNotSatisfiable()
    {
        var location = await StartAsync("uploads/order");
        using (var first = await PatchAsync(location, new byte[100], "0-99")) await first.ExpectAsync(HttpStatusCode.Accepted);
        using var skipped = await PatchAsync(location, new byte[100], "200-299");
        await skipped.ExpectErrorAsync(HttpStatusCode.RequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID");
        Assert.Equal("0-99", skipped.Headers.GetValues("Range").Single());
        using var repeated = await PatchAsync(location, new byte[100], "0-99");
        await repeated.ExpectErrorAsync(HttpStatusCode.RequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID");
    }

    [SkippableFact]
    public async Task ContentRangeDisagreeingWithLengthIsRejected()
    {
        var location = await StartAsync("uploads/size");
        using var response = await PatchAsync(location, new byte[100], "0-49");
        await response.ExpectErrorAsync(HttpStatusCode.RequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID");
        using var status = await client.GetAsync(location);
        Assert.Equal("0-0", status.Headers.GetValues("Range").Single());
    }

    [SkippableFact]
    public async Task PatchWithoutContentRangeAppendsStreamedBody()
    {
        var content = OciHttp.RandomBytes(200_000, 12);
        var location = await StartAsync("uploads/streamed");
        var stream = new StreamContent(new MemoryStream(content));
        using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = stream };
        patch.Headers.TransferEncodingChunked = true;
        using (var patched = await client.SendAsync(patch)) await patched.ExpectAsync(HttpStatusCode.Accepted);
        using var put = await client.PutAsync(OciHttp.WithQuery(location, $"digest={OciHttp.Sha256(content)}"), null);
        await put.ExpectAsync(HttpStatusCode.Created);
    }

    [SkippableFact]
    public async Task FinishWithWrongDigestFailsAndStoresNothing()
    {
        var content = OciHttp.RandomBytes(1000, 13);
        var location = await StartAsync("uploads/wrongdigest");
        using (var patched = await PatchAsync(location, content, null)) await patched.ExpectAsync(HttpStatusCode.Accepted);
        var wrong = OciHttp.Sha256(new byte[] { 9 });
        using var put = await client.PutAsync(OciHttp.WithQuery(location, $"digest={wrong}"), null);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/uploads/wrongdigest/blobs/{OciHttp.Sha256(content)}"));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }

    [SkippableFact]
    public async Task FinishWithoutDigestIsDigestInvalid()
    {
        var location = await StartAsync("uploads/nodigest");
        using var put = await client.PutAsync(location, null);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");
    }

    [SkippableFact]
    public async Task CancelledUploadIsGone()
    {
        var location = await StartAsync("uploads/cancel");
        using (var delete = await client.DeleteAsync(location)) await delete.ExpectAsync(HttpStatusCode.NoContent);
        using var patch = await PatchAsync(location, new byte[10], null);
        await patch.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
        using var again = await client.DeleteAsync(location);
        await again.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
    }

    [SkippableTheory]
    [InlineData("uploads/elsewhere")]
    [InlineData(null)]
    public async Task UploadIsUnknownFromAnotherRepositoryOrWithForgedId(string? otherRepository)
    {
        var location = await StartAsync("uploads/mine");
        var id = location.ToString().Split('/')[^1];
        var path = otherRepository is null ? "v2/uploads/mine/blobs/uploads/..%2F..%2Fblobs" : $"v2/{otherRepository}/blobs/uploads/{id}";
        using var status = await client.GetAsync(path);
        await status.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
    }
}

/// <summary>Filesystem driver only: sessions are aged by setting their files' modification time on disk.</summary>
public sealed class AbandonedUploadTests
{
    [SkippableFact]
    public async Task IdleSessionsAreRemovedAndActiveOnesKept()
    {
        // Expiry and janitor ticks run on the registry's clock: the test moves it, so each tick happens exactly when
        // told. It starts years away from the real clock, so a reading of the real one would show.
        var clock = new FakeTimeProvider();
        var interval = TimeSpan.FromMinutes(1);
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            "--Registry:UploadExpiry", "00:10:00", "--Registry:UploadCleanupInterval", interval.ToString());
        using var client = server.CreateClient();
        using var abandoned = await client.PostAsync("v2/janitor/app/blobs/uploads/", null);
        await abandoned.ExpectAsync(HttpStatusCode.Accepted);
        using var active = await client.PostAsync("v2/janitor/app/blobs/uploads/", null);
        await active.ExpectAsync(HttpStatusCode.Accepted);

        // Last written an hour ago by the registry's clock: the abandoned session and a leftover temporary file. The
        // active session was written just now.
        var longAgo = (clock.GetUtcNow() - TimeSpan.FromHours(1)).UtcDateTime;
        string Data(HttpResponseMessage session) => Path.Combine(server.StorageRoot, "uploads", session.Headers.Location!.ToString().Split('/')[^1], "data");
        File.SetLastWriteTimeUtc(Data(abandoned), longAgo);
        File.SetLastWriteTimeUtc(Data(active), clock.GetUtcNow().UtcDateTime);
        var stale = Path.Combine(server.StorageRoot, "tmp", "leftover");
        await File.WriteAllBytesAsync(stale, [1]);
        File.SetLastWriteTimeUtc(stale, longAgo);

        // Nothing goes between ticks.
        clock.Advance(interval - TimeSpan.FromSeconds(1));
        using (var status = await client.GetAsync(abandoned.Headers.Location)) await status.ExpectAsync(HttpStatusCode.NoContent);
        Assert.True(File.Exists(stale));

        // The next tick removes what is past its expiry, and only that.
        clock.Advance(TimeSpan.FromSeconds(1));
        using (var status = await client.GetAsync(abandoned.Headers.Location)) await status.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UPLOAD_UNKNOWN");
        Assert.False(File.Exists(stale));

        var content = OciHttp.RandomBytes(100, 1);
        using var patch = new HttpRequestMessage(HttpMethod.Patch, active.Headers.Location) { Content = new ByteArrayContent(content) };
        using (var patched = await client.SendAsync(patch)) await patched.ExpectAsync(HttpStatusCode.Accepted);
        using var put = await client.PutAsync(OciHttp.WithQuery(active.Headers.Location!, $"digest={OciHttp.Sha256(content)}"), null);
        await put.ExpectAsync(HttpStatusCode.Created);
    }
}

/// <summary>
/// Over the filesystem driver, the default. The truncated-upload tests watch the partial write reach the disk before
/// hanging up (a client gone before any byte is written proves nothing), so they exist for this driver only.
/// </summary>
public sealed class UploadApiTestsOnFilesystem(RegistryServerFixture fixture) : UploadApiTests(fixture), IClassFixture<RegistryServerFixture>
{
    private readonly RegistryServer server = fixture.Server;

    [SkippableFact]
    public async Task TruncatedChunkIsRolledBack()
    {
        var location = await StartAsync("uploads/truncated");
        using (var first = await PatchAsync(location, new byte[1000], "0-999")) await first.ExpectAsync(HttpStatusCode.Accepted);

        // Announce 1000000 bytes, send 300000 and hang up once part of them is on disk: the registry must roll the
        // partial chunk back. (It writes in 128 KiB pieces, so a short chunk would never reach the disk at all.)
        var id = location.ToString().Split('?')[0].Split('/')[^1];
        var data = new FileInfo(Path.Combine(server.StorageRoot, "uploads", id, "data"));
        var handled = server.Finished.NextAsync(HttpMethod.Patch, location.ToString().Split('?')[0]);
        using (var socket = new TcpClient())
        {
            await socket.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
            var stream = socket.GetStream();
            var head = $"PATCH {location} HTTP/1.1\r\nHost: {server.HostPort}\r\nContent-Type: application/octet-stream\r\nContent-Range: 1000-1000999\r\nContent-Length: 1000000\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            await stream.WriteAsync(new byte[300_000]);
            await stream.FlushAsync();
            for (var waited = 0; waited < 3000 && Length(data) <= 1000; waited++) await Task.Delay(10);
            Assert.True(Length(data) > 1000, "the partial chunk never reached the disk within 30 s");
        }

        // The server notices the disconnect on its own time; once it is done with that request, the session stands
        // exactly where the client was last told, and the client resumes from there.
        await handled.WaitAsync(TimeSpan.FromSeconds(30));
        using (var status = await client.GetAsync(location))
        {
            await status.ExpectAsync(HttpStatusCode.NoContent);
            Assert.Equal("0-999", status.Headers.GetValues("Range").Single());
        }
        var content = OciHttp.RandomBytes(1000, 14);
        using (var resumed = await PatchAsync(location, content, "1000-1999"))
        {
            await resumed.ExpectAsync(HttpStatusCode.Accepted);
            Assert.Equal("0-1999", resumed.Headers.GetValues("Range").Single());
        }
        var expected = new byte[1000].Concat(content).ToArray();
        using var put = await client.PutAsync(OciHttp.WithQuery(location, $"digest={OciHttp.Sha256(expected)}"), null);
        await put.ExpectAsync(HttpStatusCode.Created);
    }

    private static long Length(FileInfo file)
    {
        file.Refresh();
        return file.Exists ? file.Length : 0;
    }

    [SkippableFact]
    public async Task TruncatedMonolithicUploadLeavesNoBlob()
    {
        var content = OciHttp.RandomBytes(1_000_000, 15);
        var digest = OciHttp.Sha256(content);
        // A monolithic upload is written to its own temporary object under tmp/ (no session), then verified and published.
        var temporaries = Path.Combine(server.StorageRoot, "tmp");
        var earlier = Directory.GetFiles(temporaries).ToHashSet();
        var handled = server.Finished.NextAsync(HttpMethod.Post, "/v2/uploads/truncmono/blobs/uploads/");
        string? temporary;
        using (var socket = new TcpClient())
        {
            await socket.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
            var stream = socket.GetStream();
            var head = $"POST /v2/uploads/truncmono/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {server.HostPort}\r\nContent-Length: {content.Length}\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            await stream.WriteAsync(content.AsMemory(0, 300_000));
            await stream.FlushAsync();
            // Hang up only once the body is being written: a client gone before that is turned away before any
            // upload starts, and the truncated upload would never be tried.
            string? Writing() => Directory.GetFiles(temporaries).Except(earlier).FirstOrDefault(file => Length(new FileInfo(file)) > 0);
            for (var waited = 0; waited < 3000 && Writing() is null; waited++) await Task.Delay(10);
            temporary = Writing();
            Assert.True(temporary is not null, "the upload never started writing within 30 s");
        }

        // Checked once the server is done with the broken-off request: before that, absence would prove nothing.
        await handled.WaitAsync(TimeSpan.FromSeconds(30));
        using var headResponse = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/uploads/truncmono/blobs/{digest}"));
        Assert.Equal(HttpStatusCode.NotFound, headResponse.StatusCode);
        Assert.False(File.Exists(Path.Combine(server.StorageRoot, "blobs", "sha256", digest[7..9], digest[7..])));
        Assert.False(File.Exists(temporary), "the broken-off upload's temporary object was left behind");
    }
}

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class UploadApiTestsInMemory(InMemoryRegistryServerFixture fixture) : UploadApiTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
