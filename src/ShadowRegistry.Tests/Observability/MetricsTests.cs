using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ShadowRegistry.Observability;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Observability;

/// <summary>
/// <c>/metrics</c> over real Kestrel: each test scrapes before and after what it does and asserts exact deltas. Every
/// server has a collector registry of its own, so tests running side by side never see each other's counts.
/// </summary>
public sealed class MetricsTests
{
    private const string Manifests = "/v2/{name}/manifests/{reference}";
    private const string Blobs = "/v2/{name}/blobs/{digest}";
    private const string Uploads = "/v2/{name}/blobs/uploads/";
    private const string Upload = "/v2/{name}/blobs/uploads/{id}";

    private static (string, string) L(string name, string value) => (name, value);

    [Fact]
    public async Task APushMovesManifestBlobUploadAndByteCountersByExactlyWhatWasPushed()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"metrics\":1}");
        var monolithic = OciHttp.RandomBytes(5000, 1);
        var chunked = OciHttp.RandomBytes(7000, 2);
        var before = await MetricsScrape.GetAsync(client);

        var configDigest = await client.PushBlobAsync("metrics/app", config);
        var monolithicDigest = await client.PushBlobAsync("metrics/app", monolithic);
        // A chunked upload, with the in-flight gauge read while its session is open.
        using var start = await client.PostAsync("v2/metrics/app/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var open = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, open.Delta(before, "shadowregistry_upload_sessions_in_flight"));
        using (var patch = new HttpRequestMessage(HttpMethod.Patch, start.Headers.Location) { Content = new ByteArrayContent(chunked) })
        using (var patched = await client.SendAsync(patch))
        {
            await patched.ExpectAsync(HttpStatusCode.Accepted);
            using var put = await client.PutAsync(OciHttp.WithQuery(patched.Headers.Location!, $"digest={OciHttp.Sha256(chunked)}"), null);
            await put.ExpectAsync(HttpStatusCode.Created);
        }
        var manifest = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"{OciHttp.OciManifest}\"," +
            $"\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{configDigest}\",\"size\":{config.Length}}}," +
            $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{monolithicDigest}\",\"size\":{monolithic.Length}}}," +
            $"{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{OciHttp.Sha256(chunked)}\",\"size\":{chunked.Length}}}]}}");
        using (var pushed = await client.PutManifestAsync("metrics/app", "v1", manifest, OciHttp.OciManifest)) await pushed.ExpectAsync(HttpStatusCode.Created);
        using (var pulled = await client.GetAsync($"v2/metrics/app/blobs/{monolithicDigest}"))
        {
            await pulled.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(monolithic, await pulled.Content.ReadAsByteArrayAsync());
        }

        var after = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, after.Delta(before, "shadowregistry_manifest_pushes_total", L("kind", "image")));
        Assert.Equal(0, after.Delta(before, "shadowregistry_manifest_pushes_total", L("kind", "index")));
        Assert.Equal(3, after.Delta(before, "shadowregistry_blob_commits_total", L("source", "upload")));
        Assert.Equal(config.Length + monolithic.Length + chunked.Length, after.Delta(before, "shadowregistry_blob_commit_bytes_total", L("source", "upload")));
        Assert.Equal(3, after.Delta(before, "shadowregistry_blob_commit_size_bytes_count", L("source", "upload")));
        Assert.Equal(config.Length + monolithic.Length + chunked.Length, after.Delta(before, "shadowregistry_blob_commit_size_bytes_sum", L("source", "upload")));
        // The manifest's own bytes are stored as a blob too.
        Assert.Equal(1, after.Delta(before, "shadowregistry_blob_commits_total", L("source", "manifest")));
        Assert.Equal(manifest.Length, after.Delta(before, "shadowregistry_blob_commit_bytes_total", L("source", "manifest")));
        Assert.Equal(0, after.Delta(before, "shadowregistry_blob_commits_total", L("source", "upstream")));
        Assert.Equal(0, after.Delta(before, "shadowregistry_upload_sessions_in_flight"));

        // Requests by template, method and status, and their bodies counted as they streamed.
        Assert.Equal(2, after.Delta(before, "shadowregistry_http_requests_total", L("route", Uploads), L("method", "POST"), L("status", "201")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_http_requests_total", L("route", Uploads), L("method", "POST"), L("status", "202")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_http_requests_total", L("route", Upload), L("method", "PATCH"), L("status", "202")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_http_requests_total", L("route", Upload), L("method", "PUT"), L("status", "201")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_http_requests_total", L("route", Manifests), L("method", "PUT"), L("status", "201")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_http_requests_total", L("route", Blobs), L("method", "GET"), L("status", "200")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_http_request_duration_seconds_count", L("route", Manifests), L("method", "PUT"), L("status", "201")));
        Assert.Equal(config.Length + monolithic.Length, after.Delta(before, "shadowregistry_http_received_bytes_total", L("route", Uploads)));
        Assert.Equal(chunked.Length, after.Delta(before, "shadowregistry_http_received_bytes_total", L("route", Upload)));
        Assert.Equal(manifest.Length, after.Delta(before, "shadowregistry_http_received_bytes_total", L("route", Manifests)));
        Assert.Equal(monolithic.Length, after.Delta(before, "shadowregistry_http_sent_bytes_total", L("route", Blobs)));
        // Each scrape is counted once it has been answered: the two before this one.
        Assert.Equal(2, after.Delta(before, "shadowregistry_http_requests_total", L("route", "/metrics"), L("method", "GET"), L("status", "200")));
        AssertNoLabelNames(after, "metrics/app", configDigest, monolithicDigest);
    }

    [Fact]
    public async Task APullThroughCountsUpstreamRequestsAndACacheMissThenAHit()
    {
        using var upstream = FakeUpstream.Start();
        var image = FakeUpstream.Image(7);
        upstream.ServeManifest("team/app", "v1", image.Manifest);
        upstream.ServeBlob("team/app", image.Layer);
        // A tag cache that cannot expire during the test, so the second read is a hit however slow the machine.
        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:CacheBlobs", "true", "--Shadow:ManifestTagCacheTtl", "01:00:00"));
        using var client = server.CreateClient();
        var before = await MetricsScrape.GetAsync(client);
        Assert.True(before.Has("shadowregistry_upstream_circuit_open", L("upstream", "up.test")));
        Assert.Equal(0, before.Value("shadowregistry_upstream_circuit_open", L("upstream", "up.test")));

        for (var i = 0; i < 2; i++)
        {
            using var manifest = await client.GetAsync("v2/team/app/manifests/v1");
            await manifest.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(image.Manifest, await manifest.Content.ReadAsByteArrayAsync());
        }
        var afterManifests = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, afterManifests.Delta(before, "shadowregistry_upstream_cache_misses_total", L("cache", "manifest")));
        Assert.Equal(1, afterManifests.Delta(before, "shadowregistry_upstream_cache_hits_total", L("cache", "manifest")));
        Assert.Equal(1, afterManifests.Delta(before, "shadowregistry_upstream_requests_total", L("upstream", "up.test"), L("outcome", "answered"), L("status", "200")));

        for (var i = 0; i < 2; i++)
        {
            using var blob = await client.GetAsync($"v2/team/app/blobs/{OciHttp.Sha256(image.Layer)}");
            await blob.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(image.Layer, await blob.Content.ReadAsByteArrayAsync());
        }
        var after = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, after.Delta(afterManifests, "shadowregistry_upstream_cache_misses_total", L("cache", "blob")));
        Assert.Equal(1, after.Delta(afterManifests, "shadowregistry_upstream_cache_hits_total", L("cache", "blob")));
        // The first pull kept a verified copy: a commit from the upstream, of the layer's size.
        Assert.Equal(1, after.Delta(afterManifests, "shadowregistry_blob_commits_total", L("source", "upstream")));
        Assert.Equal(image.Layer.Length, after.Delta(afterManifests, "shadowregistry_blob_commit_bytes_total", L("source", "upstream")));
        Assert.Equal(0, after.Delta(before, "shadowregistry_blob_commits_total", L("source", "upload")));
        Assert.Equal(image.Layer.Length * 2, after.Delta(afterManifests, "shadowregistry_http_sent_bytes_total", L("route", Blobs)));

        // Two upstream requests in all (the manifest, the blob), which is what the upstream saw.
        Assert.Equal(2, after.Delta(before, "shadowregistry_upstream_requests_total", L("upstream", "up.test")));
        Assert.Equal(2, after.Delta(before, "shadowregistry_upstream_requests_total", L("upstream", "up.test"), L("outcome", "answered"), L("status", "200")));
        Assert.Equal(2, after.Delta(before, "shadowregistry_upstream_request_duration_seconds_count", L("upstream", "up.test"), L("outcome", "answered")));
        Assert.Equal(2, upstream.CountRequests(_ => true));
        Assert.Equal(0, after.Delta(before, "shadowregistry_upstream_collapsed_requests_total"));
        Assert.Equal(0, after.Value("shadowregistry_upstream_circuit_open", L("upstream", "up.test")));
        Assert.Equal(2, after.Delta(before, "shadowregistry_http_requests_total", L("route", Manifests), L("method", "GET"), L("status", "200")));
        AssertNoLabelNames(after, "team/app", image.Digest, OciHttp.Sha256(image.Layer));
    }

    [Fact]
    public async Task AnUnreachableUpstreamIsCountedAndOpensItsCircuitGauge()
    {
        // Nothing listens on this port: every attempt is refused, a host-level failure.
        var port = FakeUpstream.FreePort();
        await using var server = await RegistryServer.StartAsync(
            "--Shadow:Upstreams:up.test:Url", $"http://127.0.0.1:{port}",
            "--Shadow:Upstreams:up.test:Default", "true",
            "--Shadow:Retries", "0",
            "--Shadow:BreakAfterFailures", "1");
        using var client = server.CreateClient();
        var before = await MetricsScrape.GetAsync(client);

        using (var refused = await client.GetAsync("v2/team/app/manifests/v1")) await refused.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
        using (var rejected = await client.GetAsync("v2/team/app/manifests/v2")) await rejected.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");

        var after = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, after.Delta(before, "shadowregistry_upstream_requests_total", L("upstream", "up.test"), L("outcome", "unreachable"), L("status", "none")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_upstream_requests_total", L("upstream", "up.test"), L("outcome", "rejected"), L("status", "none")));
        Assert.Equal(1, after.Value("shadowregistry_upstream_circuit_open", L("upstream", "up.test")));
        Assert.Equal(2, after.Delta(before, "shadowregistry_http_requests_total", L("route", Manifests), L("method", "GET"), L("status", "503")));
    }

    [Fact]
    public async Task AuthenticationFailuresAreCountedByReasonAndMetricsNeedNoToken()
    {
        await using var server = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false));
        using var client = server.CreateClient();
        // Reachable with no credentials at all, while everything under /v2 asks for them.
        var before = await MetricsScrape.GetAsync(client);
        using (var probe = await client.GetAsync("v2/")) Assert.Equal(HttpStatusCode.Unauthorized, probe.StatusCode);
        var afterProbe = await MetricsScrape.GetAsync(client);
        // The /v2/ challenge is the handshake every client goes through, not a failure.
        Assert.Equal(0, afterProbe.Delta(before, "shadowregistry_auth_failures_total"));

        using (var anonymous = await client.GetAsync("v2/team/app/tags/list")) Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using (var forged = await client.SendAsync(HttpMethod.Get, "v2/team/app/tags/list", "not-a-token")) Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        using (var wrong = await AuthTestSupport.RequestTokenAsync(client, AuthTestSupport.Reader.Name, "wrong password", "repository:team/app:pull"))
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using (var noOne = await AuthTestSupport.RequestTokenAsync(client, null, null, "repository:team/app:pull"))
            Assert.Equal(HttpStatusCode.Unauthorized, noOne.StatusCode);
        // The reader gets a token, but it grants no push.
        var token = await AuthTestSupport.TokenAsync(client, AuthTestSupport.Reader, "repository:team/app:pull,push");
        using (var push = await client.SendAsync(HttpMethod.Post, "v2/team/app/blobs/uploads/", token)) Assert.Equal(HttpStatusCode.Forbidden, push.StatusCode);

        var after = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, after.Delta(afterProbe, "shadowregistry_auth_failures_total", L("reason", "no_token")));
        Assert.Equal(1, after.Delta(afterProbe, "shadowregistry_auth_failures_total", L("reason", "invalid_token")));
        Assert.Equal(1, after.Delta(afterProbe, "shadowregistry_auth_failures_total", L("reason", "bad_credentials")));
        Assert.Equal(1, after.Delta(afterProbe, "shadowregistry_auth_failures_total", L("reason", "anonymous_refused")));
        Assert.Equal(1, after.Delta(afterProbe, "shadowregistry_auth_failures_total", L("reason", "insufficient_scope")));
        Assert.Equal(5, after.Delta(afterProbe, "shadowregistry_auth_failures_total"));
        Assert.Equal(3, after.Delta(afterProbe, "shadowregistry_http_requests_total", L("route", "/auth/token"), L("method", "GET")));
        Assert.Equal(1, after.Delta(afterProbe, "shadowregistry_http_requests_total", L("route", Uploads), L("method", "POST"), L("status", "403")));
    }

    [Fact]
    public async Task TooManyFailedLoginsAreCountedAsThrottled()
    {
        await using var server = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: true, "--Auth:FailedLoginLimit", "1"));
        using var client = server.CreateClient();
        var before = await MetricsScrape.GetAsync(client);
        using (var wrong = await AuthTestSupport.RequestTokenAsync(client, AuthTestSupport.Reader.Name, "wrong")) Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using (var throttled = await AuthTestSupport.RequestTokenAsync(client, AuthTestSupport.Reader.Name, "wrong")) Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        var after = await MetricsScrape.GetAsync(client);
        Assert.Equal(1, after.Delta(before, "shadowregistry_auth_failures_total", L("reason", "bad_credentials")));
        Assert.Equal(1, after.Delta(before, "shadowregistry_auth_failures_total", L("reason", "throttled")));
    }

    [Fact]
    public async Task ASeparateListenAddressServesOnlyMetricsAndTheMainOneNoLonger()
    {
        await using var server = await RegistryServer.StartAsync("--metrics-listen", "http://127.0.0.1:0");
        using var client = server.CreateClient();
        var url = Assert.Single(server.Services.GetRequiredService<MetricsServer>().Urls);
        Assert.NotEqual(server.BaseAddress.Port, new Uri(url).Port);
        using var metricsClient = new HttpClient { BaseAddress = new Uri(url + "/") };

        using (var main = await client.GetAsync("metrics")) await main.ExpectErrorAsync(HttpStatusCode.NotFound, "NOT_FOUND");
        using (var api = await client.GetAsync("v2/")) await api.ExpectAsync(HttpStatusCode.OK);
        // The registry API is not reachable through the metrics address.
        using (var notApi = await metricsClient.GetAsync("v2/")) Assert.Equal(HttpStatusCode.NotFound, notApi.StatusCode);

        var scrape = await MetricsScrape.GetAsync(metricsClient);
        Assert.Equal(1, scrape.Value("shadowregistry_http_requests_total", L("route", "/v2/"), L("method", "GET"), L("status", "200")));
        Assert.Equal(1, scrape.Value("shadowregistry_http_requests_total", L("route", "/metrics"), L("method", "GET"), L("status", "404")));
    }

    [Fact]
    public async Task DisabledMetricsAreServedNowhere()
    {
        await using var server = await RegistryServer.StartAsync("--Registry:Metrics:Enabled", "false");
        using var client = server.CreateClient();
        using var response = await client.GetAsync("metrics");
        await response.ExpectErrorAsync(HttpStatusCode.NotFound, "NOT_FOUND");
        Assert.Empty(server.Services.GetRequiredService<MetricsServer>().Urls);
    }

    [Theory]
    [InlineData("ftp://127.0.0.1:9100")]
    [InlineData("http://127.0.0.1:9100/metrics")]
    [InlineData("127.0.0.1:9100")]
    public async Task AMetricsListenAddressThatIsNoURLStopsTheStart(string listen)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => RegistryServer.StartAsync("--Registry:Metrics:Listen", listen));
        Assert.Contains("Registry:Metrics:Listen", error.Message);
    }

    [Fact]
    public async Task OpenMetricsIsServedWhenAsked()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/openmetrics-text"));
        using var response = await client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal("application/openmetrics-text", response.Content.Headers.ContentType?.MediaType);
        Assert.EndsWith("# EOF\n", await response.Content.ReadAsStringAsync());
    }

    /// <summary>No label value names a repository, digest or tag: each would make a series per image.</summary>
    private static void AssertNoLabelNames(MetricsScrape scrape, params string[] names)
    {
        foreach (var series in scrape.Series)
        foreach (var (label, value) in series.Labels)
        foreach (var name in names)
            Assert.False(value.Contains(name, StringComparison.Ordinal), $"{series.Name}{{{label}=\"{value}\"}} names '{name}'");
        var routes = scrape.Series.Where(s => s.Labels.ContainsKey("route")).Select(s => s.Labels["route"]).Distinct();
        Assert.All(routes, route => Assert.True(route is "/metrics" or "/healthz" or "/readyz" or "/auth/token" or "other" || route.StartsWith("/v2/", StringComparison.Ordinal), route));
    }
}
