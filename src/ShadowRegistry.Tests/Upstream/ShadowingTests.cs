using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Tests.Infrastructure;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Upstream;

/// <summary>Local-first reads falling through to an upstream (WireMock.Net), and writes that stay local.</summary>
public sealed class ShadowingTests : IAsyncLifetime
{
    private readonly FakeUpstream upstream = FakeUpstream.Start();
    private RegistryServer server = null!;
    private HttpClient client = null!;

    public async Task InitializeAsync()
    {
        server = await RegistryServer.StartAsync(upstream.RegistryArgs());
        client = server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await server.DisposeAsync();
        upstream.Dispose();
    }

    private async Task<(HttpStatusCode Status, string? Digest, byte[] Body)> GetManifestAsync(string path)
    {
        using var response = await client.GetAsync(path);
        var digest = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.Single() : null;
        return (response.StatusCode, digest, await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task LocalTagShadowsUpstreamTagUntilDeleted()
    {
        var remote = FakeUpstream.Image(1);
        upstream.ServeManifest("team/app", "v1", remote.Manifest);

        var first = await GetManifestAsync("v2/team/app/manifests/v1");
        Assert.Equal(HttpStatusCode.OK, first.Status);
        Assert.Equal(remote.Digest, first.Digest);
        Assert.Equal(remote.Manifest, first.Body);

        var (_, localDigest) = await client.PushImageAsync("team/app", "v1", seed: 50);
        var shadowed = await GetManifestAsync("v2/team/app/manifests/v1");
        Assert.Equal(localDigest, shadowed.Digest);

        using (var delete = await client.DeleteAsync("v2/team/app/manifests/v1")) await delete.ExpectAsync(HttpStatusCode.Accepted);
        var again = await GetManifestAsync("v2/team/app/manifests/v1");
        Assert.Equal(remote.Digest, again.Digest);

        // Nothing was ever written upstream.
        Assert.Equal(0, upstream.CountRequests(r => r.Method is "POST" or "PUT" or "PATCH" or "DELETE"));
    }

    [Fact]
    public async Task AllNameFormsReachTheSameLocalRepository()
    {
        var (_, digest) = await client.PushImageAsync("up.test/forms/app", "v1", seed: 51);
        foreach (var path in new[] { "v2/forms/app/manifests/v1", "v2/forms/app/manifests/v1?ns=up.test", "v2/up.test/forms/app/manifests/v1" })
        {
            var found = await GetManifestAsync(path);
            Assert.True(found.Status == HttpStatusCode.OK, path);
            Assert.Equal(digest, found.Digest);
        }
        Assert.Equal(0, upstream.CountRequests(_ => true));
        using var catalog = await client.GetAsync("v2/_catalog");
        Assert.Contains("\"up.test/forms/app\"", await catalog.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UploadLocationsKeepTheClientsNameAndNamespace()
    {
        var content = OciHttp.RandomBytes(5000, 63);
        using var start = await client.PostAsync("v2/team/nsup/blobs/uploads/?ns=up.test", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!.ToString();
        Assert.StartsWith("/v2/team/nsup/blobs/uploads/", location);
        Assert.EndsWith("?ns=up.test", location);

        using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content) };
        using var patched = await client.SendAsync(patch);
        await patched.ExpectAsync(HttpStatusCode.Accepted);
        using var put = await client.PutAsync($"{patched.Headers.Location}&digest={OciHttp.Sha256(content)}", null);
        await put.ExpectAsync(HttpStatusCode.Created);
        Assert.Equal($"/v2/team/nsup/blobs/{OciHttp.Sha256(content)}?ns=up.test", put.Headers.Location!.ToString());

        // Every name form sees the blob in the one local repository.
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/up.test/team/nsup/blobs/{OciHttp.Sha256(content)}"));
        await head.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(0, upstream.CountRequests(_ => true));
    }

    [Fact]
    public async Task TagListPaginationKeepsTheNamespace()
    {
        upstream.ServeTags("team/pages", "a", "b", "c");
        using var response = await client.GetAsync("v2/team/pages/tags/list?ns=up.test&n=1");
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal("</v2/team/pages/tags/list?n=1&last=a&ns=up.test>; rel=\"next\"", response.Headers.GetValues("Link").Single());
    }

    [Fact]
    public async Task BlobsFallThroughAndAreStreamed()
    {
        var content = OciHttp.RandomBytes(3 * 1024 * 1024, 52);
        upstream.ServeBlob("team/blobs", content);
        var digest = OciHttp.Sha256(content);

        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/team/blobs/blobs/{digest}"));
        await head.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content.Length, head.Content.Headers.ContentLength);

        using var get = await client.GetAsync($"v2/up.test/team/blobs/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());

        var missing = OciHttp.Sha256([1, 2]);
        using var unknown = await client.GetAsync($"v2/team/blobs/blobs/{missing}");
        await unknown.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
    }

    [Fact]
    public async Task TagListMergesLocalAndUpstream()
    {
        upstream.ServeTags("team/tags", "b", "a");
        await client.PushImageAsync("team/tags", "c", seed: 53);
        await client.PushImageAsync("team/tags", "a", seed: 54);
        using var response = await client.GetAsync("v2/team/tags/tags/list");
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal("{\"name\":\"team/tags\",\"tags\":[\"a\",\"b\",\"c\"]}", await response.Content.ReadAsStringAsync());

        using var unknown = await client.GetAsync("v2/team/nowhere/tags/list");
        await unknown.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
    }

    [Fact]
    public async Task ManifestPushMayReferenceUpstreamBlobs()
    {
        var remote = FakeUpstream.Image(55);
        upstream.ServeBlob("team/derived", remote.Config);
        upstream.ServeBlob("team/derived", remote.Layer);
        using var put = await client.PutManifestAsync("team/derived", "v1", remote.Manifest, OciHttp.OciManifest);
        await put.ExpectAsync(HttpStatusCode.Created);

        // A blob neither here nor upstream is still refused.
        var orphan = FakeUpstream.Image(56);
        using var refused = await client.PutManifestAsync("team/derived", "v2", orphan.Manifest, OciHttp.OciManifest);
        await refused.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_BLOB_UNKNOWN");
    }

    [Fact]
    public async Task MountFromUpstreamOnlyRepositoryFetchesThrough()
    {
        var content = OciHttp.RandomBytes(100_000, 57);
        upstream.ServeBlob("team/base", content);
        var digest = OciHttp.Sha256(content);
        using var mount = await client.PostAsync($"v2/team/new/blobs/uploads/?mount={digest}&from=team/base", null);
        await mount.ExpectAsync(HttpStatusCode.Created);
        using var get = await client.GetAsync($"v2/team/new/blobs/{digest}");
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        Assert.Equal(1, upstream.CountRequests(r => r.Method == "GET" && r.Path.EndsWith(digest)));
    }

    [Fact]
    public async Task UpstreamContentThatDoesNotMatchItsDigestIsRefused()
    {
        var remote = FakeUpstream.Image(58);
        var wrong = OciHttp.Sha256([9, 9, 9]);
        upstream.ServeManifest("team/liar", "v1", remote.Manifest, digest: wrong);
        using var response = await client.GetAsync("v2/team/liar/manifests/v1");
        await response.ExpectErrorAsync(HttpStatusCode.BadGateway, "UNAVAILABLE");
    }

    [Fact]
    public async Task ClientAuthorizationIsNeverForwarded()
    {
        var remote = FakeUpstream.Image(59);
        upstream.ServeManifest("team/secret", "v1", remote.Manifest);
        upstream.ServeBlob("team/secret", remote.Layer);
        foreach (var path in new[] { "v2/team/secret/manifests/v1", $"v2/team/secret/blobs/{OciHttp.Sha256(remote.Layer)}" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "client-secret");
            using var response = await client.SendAsync(request);
            await response.ExpectAsync(HttpStatusCode.OK);
        }
        Assert.Equal(2, upstream.CountRequests(_ => true));
        Assert.Equal(0, upstream.CountRequests(r => r.Headers?.ContainsKey("Authorization") == true));
    }

    [Fact]
    public async Task DockerHubShortNamesGetLibraryPrefix()
    {
        await using var hub = await RegistryServer.StartAsync("--Shadow:Upstreams:docker.io:Url", upstream.Url, "--Shadow:Upstreams:docker.io:Default", "true");
        using var hubClient = hub.CreateClient();
        var remote = FakeUpstream.Image(60);
        upstream.ServeManifest("library/alpine", "3", remote.Manifest);
        foreach (var path in new[] { "v2/alpine/manifests/3", "v2/library/alpine/manifests/3", "v2/docker.io/alpine/manifests/3", "v2/alpine/manifests/3?ns=docker.io" })
        {
            using var response = await hubClient.GetAsync(path);
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(remote.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
    }

    [Fact]
    public async Task UnknownNamespaceHasNoUpstream()
    {
        using var response = await client.GetAsync("v2/team/app/manifests/v1?ns=quay.io");
        await response.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        Assert.Equal(0, upstream.CountRequests(_ => true));
    }

    [Fact]
    public async Task ConcurrentPullsOfOneUpstreamTagMakeOneUpstreamRequest()
    {
        await using var uncached = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:ManifestTagCacheTtl", "00:00:00"));
        using var uncachedClient = uncached.CreateClient();
        var remote = FakeUpstream.Image(64);
        upstream.Server.Given(Request.Create().WithPath("/v2/team/popular/manifests/v1").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(200).WithDelay(TimeSpan.FromMilliseconds(500))
                .WithHeader("Content-Type", OciHttp.OciManifest).WithBody(remote.Manifest));
        var pulls = Enumerable.Range(0, 20).Select(async _ =>
        {
            using var response = await uncachedClient.GetAsync("v2/team/popular/manifests/v1");
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(remote.Manifest, await response.Content.ReadAsByteArrayAsync());
        });
        await Task.WhenAll(pulls);
        // Docker Hub counts every manifest GET against the pull limit: a burst of CI jobs must cost one.
        Assert.Equal(1, upstream.CountRequests(r => r.Path == "/v2/team/popular/manifests/v1"));
    }

    [Fact]
    public async Task UpstreamTagIsServedFromMemoryForItsTtlThenAskedForAgain()
    {
        // The TTL runs on the registry's clock: the test moves it rather than waiting 30 s.
        var clock = new FakeTimeProvider();
        await using var cached = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            upstream.RegistryArgs("--Shadow:ManifestTagCacheTtl", "00:00:30"));
        using var cachedClient = cached.CreateClient();
        var (before, after) = (FakeUpstream.Image(68), FakeUpstream.Image(69));
        const string Path = "/v2/team/retagged/manifests/v1";
        int Asked() => upstream.CountRequests(r => r.Path == Path);
        async Task<string> DigestAsync()
        {
            using var response = await cachedClient.GetAsync("v2/team/retagged/manifests/v1");
            await response.ExpectAsync(HttpStatusCode.OK);
            return response.Headers.GetValues("Docker-Content-Digest").Single();
        }

        upstream.ServeManifest("team/retagged", "v1", before.Manifest);
        Assert.Equal(before.Digest, await DigestAsync());
        var asked = Asked();

        // Retagged upstream: within the TTL the registry neither asks nor notices.
        upstream.Server.ResetMappings();
        upstream.ServeManifest("team/retagged", "v1", after.Manifest);
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(before.Digest, await DigestAsync());
        Assert.Equal(asked, Asked());

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(after.Digest, await DigestAsync());
        Assert.True(Asked() > asked, "the registry did not ask the upstream again once the TTL was over");
    }

    [Fact]
    public async Task HeadUsesUpstreamHeadOnly()
    {
        var remote = FakeUpstream.Image(61);
        upstream.ServeManifest("team/head", "v1", remote.Manifest);
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "v2/team/head/manifests/v1"));
        await head.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(remote.Digest, head.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal(remote.Manifest.Length, head.Content.Headers.ContentLength);
        // Docker Hub counts manifest GETs against pull limits, HEADs not: a HEAD must stay a HEAD.
        Assert.Equal(0, upstream.CountRequests(r => r.Method == "GET"));
    }

    [Fact]
    public async Task BlobPullThroughCacheServesSecondPullLocally()
    {
        await using var caching = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:CacheBlobs", "true"));
        using var cachingClient = caching.CreateClient();
        var content = OciHttp.RandomBytes(500_000, 62);
        upstream.ServeBlob("team/cached", content);
        var digest = OciHttp.Sha256(content);
        for (var i = 0; i < 3; i++)
        {
            using var get = await cachingClient.GetAsync($"v2/team/cached/blobs/{digest}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        }
        Assert.Equal(1, upstream.CountRequests(r => r.Path.EndsWith(digest)));
        // Cached is not pushed: the blob is not part of the local repository.
        using var tags = await cachingClient.GetAsync("v2/_catalog");
        Assert.DoesNotContain("team/cached", await tags.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task CachingRelayNeverDeliversAWrongBlobAsComplete()
    {
        await using var caching = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:CacheBlobs", "true"));
        using var cachingClient = caching.CreateClient();
        foreach (var size in new[] { 1000, 1_000_000 })
        {
            var claimed = OciHttp.RandomBytes(size, 65);
            var sent = OciHttp.RandomBytes(size, 66);
            var digest = OciHttp.Sha256(claimed);
            upstream.Server.Given(Request.Create().WithPath($"/v2/team/corrupt/blobs/{digest}").UsingGet())
                .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/octet-stream").WithBody(sent));
            byte[]? received = null;
            try
            {
                using var response = await cachingClient.GetAsync($"v2/team/corrupt/blobs/{digest}");
                if (response.IsSuccessStatusCode) received = await response.Content.ReadAsByteArrayAsync();
            }
            catch (HttpRequestException)
            {
                // Aborted mid-body: the client knows the download failed.
            }
            Assert.True(received is null, $"{size}: the client received {received?.Length} bytes as a complete blob");
            Assert.False(File.Exists(Path.Combine(caching.StorageRoot, "blobs", "sha256", digest[7..9], digest[7..])));
        }
    }

    [Fact]
    public async Task CachingReusesBytesAlreadyHeldOnceUpstreamConfirmsThem()
    {
        await using var caching = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:CacheBlobs", "true"));
        using var cachingClient = caching.CreateClient();
        var content = OciHttp.RandomBytes(300_000, 67);
        var digest = await cachingClient.PushBlobAsync("up.test/team/pushed-elsewhere", content);
        upstream.ServeBlob("team/reuse", content);

        using var get = await cachingClient.GetAsync($"v2/team/reuse/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        Assert.Equal(0, upstream.CountRequests(r => r.Method == "GET"));
        Assert.Equal(1, upstream.CountRequests(r => r.Method == "HEAD"));

        // Without the upstream's word, bytes held for another repository are not served here.
        using var unconfirmed = await cachingClient.GetAsync($"v2/team/not-upstream/blobs/{digest}");
        await unconfirmed.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
    }
}
