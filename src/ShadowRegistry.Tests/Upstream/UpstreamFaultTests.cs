using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Tests.Infrastructure;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Upstream;

/// <summary>Upstream faults injected with WireMock.Net (and a raw socket where HTTP must be broken on purpose).</summary>
public sealed class UpstreamFaultTests : IDisposable
{
    private readonly FakeUpstream upstream = FakeUpstream.Start();

    public void Dispose() => upstream.Dispose();

    /// <summary>Requests to <paramref name="path"/> without the token get a Bearer challenge (lowest priority).</summary>
    private void ChallengeForToken(string path, string token)
    {
        var unauthorized = upstream.Server.Given(Request.Create().WithPath(path).UsingAnyMethod().WithHeader("Authorization", $"Bearer {token}", WireMock.Matchers.MatchBehaviour.RejectOnMatch));
        unauthorized.AtPriority(10).RespondWith(Response.Create().WithStatusCode(401)
            .WithHeader("WWW-Authenticate", $"Bearer realm=\"{upstream.Url}/token\",service=\"up.test\",scope=\"repository:team/app:pull\""));
    }

    private void ServeManifestWithToken(string path, string token, (byte[] Manifest, string Digest, byte[] Config, byte[] Layer) image)
    {
        upstream.Server.Given(Request.Create().WithPath(path).UsingGet().WithHeader("Authorization", $"Bearer {token}"))
            .AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", OciHttp.OciManifest)
                .WithHeader("Docker-Content-Digest", image.Digest).WithBody(image.Manifest));
    }

    private void ServeToken(string token, int expiresIn, bool requireBasic = false)
    {
        var request = Request.Create().WithPath("/token").UsingGet().WithParam("service", "up.test").WithParam("scope", "repository:team/app:pull");
        if (requireBasic) request = request.WithHeader("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("ci-bot:s3cret")));
        upstream.Server.Given(request).RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
            .WithBody($"{{\"token\":\"{token}\",\"expires_in\":{expiresIn}}}"));
    }

    private int TokenRequests => upstream.CountRequests(r => r.Path == "/token");

    [Fact]
    public async Task BearerChallengeIsAnsweredAndTokenCachedPerScope()
    {
        var remote = FakeUpstream.Image(70);
        ChallengeForToken("/v2/team/app/manifests/v1", "tok-1");
        ServeManifestWithToken("/v2/team/app/manifests/v1", "tok-1", remote);
        ServeToken("tok-1", 300, requireBasic: true);

        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs(
            "--Shadow:Upstreams:up.test:Username", "ci-bot", "--Shadow:Upstreams:up.test:Password", "s3cret",
            "--Shadow:ManifestTagCacheTtl", "00:00:00"));
        using var client = server.CreateClient();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync("v2/team/app/manifests/v1");
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(remote.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
        Assert.Equal(1, TokenRequests);
        Assert.Equal(1, upstream.CountRequests(r => r.Path.EndsWith("/manifests/v1") && r.Headers?.ContainsKey("Authorization") != true));
    }

    [Fact]
    public async Task ExpiredTokenIsRenewed()
    {
        var remote = FakeUpstream.Image(71);
        ChallengeForToken("/v2/team/app/manifests/v1", "tok-short");
        ServeManifestWithToken("/v2/team/app/manifests/v1", "tok-short", remote);
        ServeToken("tok-short", expiresIn: 1);

        // The token's lifetime runs on the registry's clock, so the test moves that clock rather than waiting.
        var clock = new FakeTimeProvider();
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            upstream.RegistryArgs("--Shadow:ManifestTagCacheTtl", "00:00:00"));
        using var client = server.CreateClient();
        using (var first = await client.GetAsync("v2/team/app/manifests/v1")) await first.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(1, TokenRequests);

        clock.Advance(TimeSpan.FromMilliseconds(999));
        using (var cached = await client.GetAsync("v2/team/app/manifests/v1")) await cached.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(1, TokenRequests);

        clock.Advance(TimeSpan.FromMilliseconds(1));
        using (var renewed = await client.GetAsync("v2/team/app/manifests/v1")) await renewed.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(2, TokenRequests);
    }

    [Fact]
    public async Task RevokedTokenGets401ThenRenewedTokenSucceeds()
    {
        var remote = FakeUpstream.Image(72);
        // The first token is refused by the registry; the second works.
        upstream.Server.Given(Request.Create().WithPath("/token").UsingGet()).InScenario("tokens").WillSetStateTo("second")
            .RespondWith(Response.Create().WithStatusCode(200).WithBody("{\"token\":\"revoked\",\"expires_in\":300}"));
        upstream.Server.Given(Request.Create().WithPath("/token").UsingGet()).InScenario("tokens").WhenStateIs("second")
            .RespondWith(Response.Create().WithStatusCode(200).WithBody("{\"access_token\":\"good\",\"expires_in\":300}"));
        ChallengeForToken("/v2/team/app/manifests/v1", "good");
        ServeManifestWithToken("/v2/team/app/manifests/v1", "good", remote);

        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:ManifestTagCacheTtl", "00:00:00"));
        using var client = server.CreateClient();
        using (var first = await client.GetAsync("v2/team/app/manifests/v1"))
            await first.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN"); // challenge answered once; the token was refused
        using var second = await client.GetAsync("v2/team/app/manifests/v1");
        await second.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(2, TokenRequests);
    }

    [Theory]
    [InlineData(429)]
    [InlineData(503)]
    [InlineData(500)]
    public async Task TransientFailuresAreRetried(int status)
    {
        var remote = FakeUpstream.Image(73);
        upstream.Server.Given(Request.Create().WithPath("/v2/team/app/manifests/v1").UsingGet()).InScenario("flaky").WillSetStateTo("ok")
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Retry-After", "0"));
        upstream.Server.Given(Request.Create().WithPath("/v2/team/app/manifests/v1").UsingGet()).InScenario("flaky").WhenStateIs("ok")
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", OciHttp.OciManifest).WithBody(remote.Manifest));
        var blob = OciHttp.RandomBytes(10_000, 74);
        var blobPath = $"/v2/team/app/blobs/{OciHttp.Sha256(blob)}";
        upstream.Server.Given(Request.Create().WithPath(blobPath).UsingGet()).InScenario("flakyblob").WillSetStateTo("ok")
            .RespondWith(Response.Create().WithStatusCode(status));
        upstream.Server.Given(Request.Create().WithPath(blobPath).UsingGet()).InScenario("flakyblob").WhenStateIs("ok")
            .RespondWith(Response.Create().WithStatusCode(200).WithBody(blob));

        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs());
        using var client = server.CreateClient();
        using (var manifest = await client.GetAsync("v2/team/app/manifests/v1"))
        {
            await manifest.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(remote.Manifest, await manifest.Content.ReadAsByteArrayAsync());
        }
        using var get = await client.GetAsync($"v2/team/app/blobs/{OciHttp.Sha256(blob)}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(blob, await get.Content.ReadAsByteArrayAsync());
        Assert.Equal(2, upstream.CountRequests(r => r.Path == blobPath));
    }

    [Fact]
    public async Task BlobRedirectIsFollowedWithoutLeakingCredentials()
    {
        using var cdn = FakeUpstream.Start();
        var blob = OciHttp.RandomBytes(200_000, 75);
        var digest = OciHttp.Sha256(blob);
        cdn.Server.Given(Request.Create().WithPath("/cdn/layer").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/octet-stream").WithBody(blob));
        ChallengeForToken($"/v2/team/app/blobs/{digest}", "tok-r");
        ServeToken("tok-r", 300);
        upstream.Server.Given(Request.Create().WithPath($"/v2/team/app/blobs/{digest}").UsingGet().WithHeader("Authorization", "Bearer tok-r"))
            .AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(307).WithHeader("Location", $"{cdn.Url}/cdn/layer?signature=abc"));

        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs());
        using var client = server.CreateClient();
        using var get = await client.GetAsync($"v2/team/app/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(blob, await get.Content.ReadAsByteArrayAsync());
        Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal(1, cdn.CountRequests(_ => true));
        Assert.Equal(0, cdn.CountRequests(r => r.Headers?.ContainsKey("Authorization") == true));
    }

    [Fact]
    public async Task SlowUpstreamTimesOutWithUnavailable()
    {
        upstream.Server.Given(Request.Create().WithPath("/v2/team/app/manifests/v1").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(200).WithDelay(TimeSpan.FromSeconds(5)).WithBody("{}"));
        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:AttemptTimeout", "00:00:00.300", "--Shadow:Retries", "1"));
        using var client = server.CreateClient();
        // The upstream would answer 200 after 5 s: a 503 means the attempt timeout cut it off.
        using var response = await client.GetAsync("v2/team/app/manifests/v1");
        await response.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
    }

    [Fact]
    public async Task DeadUpstreamStillServesLocalContentAndFailsMissesClearly()
    {
        var deadPort = FakeUpstream.FreePort();
        await using var server = await RegistryServer.StartAsync(
            "--Shadow:Upstreams:up.test:Url", $"http://127.0.0.1:{deadPort}", "--Shadow:Upstreams:up.test:Default", "true",
            "--Shadow:RetryBaseDelay", "00:00:00.010", "--Shadow:BreakAfterFailures", "3", "--Shadow:BreakDuration", "00:01:00");
        using var client = server.CreateClient();
        var (_, digest) = await client.PushImageAsync("team/app", "local", seed: 76);

        using (var local = await client.GetAsync("v2/team/app/manifests/local"))
        {
            await local.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(digest, local.Headers.GetValues("Docker-Content-Digest").Single());
        }
        using (var tags = await client.GetAsync("v2/team/app/tags/list"))
        {
            await tags.ExpectAsync(HttpStatusCode.OK);
            Assert.Contains("\"local\"", await tags.Content.ReadAsStringAsync());
        }
        using (var miss = await client.GetAsync("v2/team/app/manifests/other")) await miss.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
        using (var blobMiss = await client.GetAsync($"v2/team/app/blobs/{OciHttp.Sha256([7])}")) await blobMiss.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");

        // Past the breaker's threshold the answer stays a clear 503 (the circuit's own count is checked separately).
        using (var open = await client.GetAsync("v2/team/app/manifests/third")) await open.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
    }

    [Fact]
    public async Task CircuitBreakerStopsHammeringAFailingUpstream()
    {
        // The whole upstream answers 503, seen through several repositories: a host failure, not one broken repository.
        upstream.Server.Given(Request.Create().WithPath("/v2/team/*").UsingGet()).RespondWith(Response.Create().WithStatusCode(503));
        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs("--Shadow:Retries", "1", "--Shadow:BreakAfterFailures", "4",
            "--Shadow:BreakAfterRepositories", "2", "--Shadow:BreakDuration", "00:01:00"));
        using var client = server.CreateClient();
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync($"v2/team/app{i}/manifests/v1");
            await response.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
        }
        // app0 fails twice (one repository: not yet the host's), app1 twice more: 4 host-level failures open the circuit.
        Assert.Equal(4, upstream.CountRequests(_ => true));
    }

    [Fact]
    public async Task TruncatedUpstreamBlobNeverReachesTheClientAsComplete()
    {
        var blob = OciHttp.RandomBytes(100_000, 77);
        var digest = OciHttp.Sha256(blob);
        using var truncating = new TruncatingUpstream(blob, sendBytes: 40_000);

        foreach (var cache in new[] { "false", "true" })
        {
            await using var server = await RegistryServer.StartAsync(
                "--Shadow:Upstreams:up.test:Url", truncating.Url, "--Shadow:Upstreams:up.test:Default", "true",
                "--Shadow:Retries", "0", "--Shadow:CacheBlobs", cache);
            using var client = server.CreateClient();
            byte[]? received = null;
            HttpStatusCode? status = null;
            try
            {
                using var response = await client.GetAsync($"v2/team/app/blobs/{digest}");
                status = response.StatusCode;
                received = await response.Content.ReadAsByteArrayAsync();
            }
            catch (HttpRequestException)
            {
                // The connection was aborted mid-body: the client knows the download failed.
            }
            Assert.False(status == HttpStatusCode.OK && received is not null, $"cache={cache}: client got {status} with {received?.Length} bytes as if complete");
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/team/app/blobs/{digest}"));
            Assert.False(File.Exists(Path.Combine(server.StorageRoot, "blobs", "sha256", digest[7..9], digest[7..])), "a truncated blob was stored");
        }
    }

    /// <summary>An HTTP/1.1 server that announces the whole blob and closes the connection part-way through it.</summary>
    private sealed class TruncatingUpstream : IDisposable
    {
        private readonly TcpListener listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource stop = new();

        public TruncatingUpstream(byte[] blob, int sendBytes)
        {
            listener.Start();
            _ = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    TcpClient connection;
                    try { connection = await listener.AcceptTcpClientAsync(stop.Token); }
                    catch (OperationCanceledException) { return; }
                    using (connection)
                    {
                        var stream = connection.GetStream();
                        var reader = new StreamReader(stream, Encoding.ASCII, leaveOpen: true);
                        var requestLine = await reader.ReadLineAsync();
                        while (!string.IsNullOrEmpty(await reader.ReadLineAsync())) { }
                        var isHead = requestLine?.StartsWith("HEAD") == true;
                        var headers = $"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {blob.Length}\r\nConnection: close\r\n\r\n";
                        await stream.WriteAsync(Encoding.ASCII.GetBytes(headers));
                        if (!isHead) await stream.WriteAsync(blob.AsMemory(0, sendBytes));
                    }
                }
            });
        }

        public string Url => $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";

        public void Dispose()
        {
            stop.Cancel();
            listener.Stop();
        }
    }
}
