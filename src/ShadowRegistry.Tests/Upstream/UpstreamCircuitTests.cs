using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Tests.Infrastructure;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Upstream;

/// <summary>
/// The upstream circuit breaker through the real registry: a broken repository must not block the others of its
/// upstream, while a broken host still fails fast and is tried again after BreakDuration (on a fake clock).
/// </summary>
public sealed class UpstreamCircuitTests : IDisposable
{
    private readonly FakeUpstream upstream = FakeUpstream.Start();

    public void Dispose() => upstream.Dispose();

    /// <summary>Asserts a 503 UNAVAILABLE and returns its message.</summary>
    private static async Task<string> UnavailableMessageAsync(HttpResponseMessage response)
    {
        await response.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("errors")[0].GetProperty("message").GetString()!;
    }

    private static async Task ExpectImageAsync(HttpClient client, string repository, string tag, (byte[] Manifest, string Digest, byte[] Config, byte[] Layer) image)
    {
        using (var manifest = await client.GetAsync($"v2/{repository}/manifests/{tag}"))
        {
            await manifest.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(image.Manifest, await manifest.Content.ReadAsByteArrayAsync());
        }
        using var blob = await client.GetAsync($"v2/{repository}/blobs/{OciHttp.Sha256(image.Layer)}");
        await blob.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(image.Layer, await blob.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task RepositoryAnswering500DoesNotBlockTheOtherRepositoriesOfItsUpstream()
    {
        var image = FakeUpstream.Image(80);
        upstream.ServeManifest("team/app", "v1", image.Manifest);
        upstream.ServeBlob("team/app", image.Layer);
        upstream.Server.Given(Request.Create().WithPath("/v2/broken/app/*").UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(500));

        await using var server = await RegistryServer.StartAsync(upstream.RegistryArgs(
            "--Shadow:Retries", "1", "--Shadow:BreakAfterFailures", "3", "--Shadow:BreakDuration", "00:10:00"));
        using var client = server.CreateClient();

        // 5 pulls of 2 attempts each: 10 consecutive 500s, over three times BreakAfterFailures, all from one repository.
        const int brokenPulls = 5;
        for (var i = 0; i < brokenPulls; i++)
        {
            using var broken = await client.GetAsync("v2/broken/app/manifests/v1");
            Assert.Contains("answered 500", await UnavailableMessageAsync(broken));
        }
        Assert.Equal(brokenPulls * 2, upstream.CountRequests(r => r.Path.StartsWith("/v2/broken/app/")));

        await ExpectImageAsync(client, "team/app", "v1", image);

        // The broken repository still gets its own error from the upstream, not a circuit's.
        using var again = await client.GetAsync("v2/broken/app/manifests/v2");
        Assert.Contains("answered 500", await UnavailableMessageAsync(again));
        Assert.Equal(brokenPulls * 2 + 2, upstream.CountRequests(r => r.Path.StartsWith("/v2/broken/app/")));
    }

    [Fact]
    public async Task RepositoryDroppingItsConnectionsDoesNotBlockTheOtherRepositoriesOfItsUpstream()
    {
        var image = FakeUpstream.Image(81);
        var layerPath = $"/v2/team/app/blobs/{OciHttp.Sha256(image.Layer)}";
        using var raw = new RawUpstream((method, path) =>
            path.StartsWith("/v2/broken/app/") ? null
            : path == "/v2/team/app/manifests/v1" ? RawUpstream.Ok(method, image.Manifest, OciHttp.OciManifest, image.Digest)
            : path == layerPath ? RawUpstream.Ok(method, image.Layer, "application/octet-stream", OciHttp.Sha256(image.Layer))
            : RawUpstream.NotFound);

        await using var server = await RegistryServer.StartAsync(
            "--Shadow:Upstreams:up.test:Url", raw.Url, "--Shadow:Upstreams:up.test:Default", "true", "--Shadow:RetryBaseDelay", "00:00:00.020",
            "--Shadow:Retries", "1", "--Shadow:BreakAfterFailures", "3", "--Shadow:BreakDuration", "00:10:00");
        using var client = server.CreateClient();

        // 5 pulls of 2 attempts each: 10 attempts whose connection closed before any response, all for one repository.
        const int brokenPulls = 5;
        var perPull = 0;
        for (var i = 0; i < brokenPulls; i++)
        {
            using var broken = await client.GetAsync("v2/broken/app/manifests/v1");
            Assert.DoesNotContain("circuit", await UnavailableMessageAsync(broken));
            // SocketsHttpHandler itself reconnects a few times for such a request; each pull must cost the same.
            if (i == 0) perPull = raw.Count(path => path.StartsWith("/v2/broken/app/"));
        }
        Assert.True(perPull >= 2, $"{perPull} requests for the first pull");
        Assert.Equal(brokenPulls * perPull, raw.Count(path => path.StartsWith("/v2/broken/app/")));

        await ExpectImageAsync(client, "team/app", "v1", image);
    }

    [Fact]
    public async Task UnreachableHostOpensTheCircuitWhichFailsFastUntilBreakDurationHasPassed()
    {
        var port = FakeUpstream.FreePort();
        var clock = new FakeTimeProvider();
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            "--Shadow:Upstreams:up.test:Url", $"http://127.0.0.1:{port}", "--Shadow:Upstreams:up.test:Default", "true",
            "--Shadow:RetryBaseDelay", "00:00:00.010", "--Shadow:Retries", "0",
            "--Shadow:BreakAfterFailures", "3", "--Shadow:BreakDuration", "00:01:00");
        using var client = server.CreateClient();

        // Nothing listens: 3 refused connections, one repository. Refusal is the host's, whatever the repository.
        for (var i = 0; i < 3; i++)
        {
            using var refused = await client.GetAsync($"v2/team/app/manifests/refused{i}");
            await refused.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
        }

        // The host is back, but the circuit is open: requests for any repository fail fast and never reach it.
        using var back = FakeUpstream.Start(port);
        var image = FakeUpstream.Image(82);
        back.ServeManifest("team/app", "v1", image.Manifest);
        back.ServeBlob("team/app", image.Layer);
        back.ServeManifest("other/app", "v1", image.Manifest);
        foreach (var repository in new[] { "team/app", "other/app" })
        {
            using var open = await client.GetAsync($"v2/{repository}/manifests/v1");
            Assert.Contains("circuit open", await UnavailableMessageAsync(open));
        }
        clock.Advance(TimeSpan.FromSeconds(59));
        using (var stillOpen = await client.GetAsync("v2/team/app/manifests/v1")) Assert.Contains("circuit open", await UnavailableMessageAsync(stillOpen));
        Assert.Equal(0, back.CountRequests(_ => true));

        // BreakDuration has passed: the next request probes the host, and its answer closes the circuit.
        clock.Advance(TimeSpan.FromSeconds(1));
        await ExpectImageAsync(client, "team/app", "v1", image);
        using (var other = await client.GetAsync("v2/other/app/manifests/v1")) await other.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(3, back.CountRequests(_ => true));
    }

    [Fact]
    public async Task ServerErrorsAcrossRepositoriesOpenTheCircuitWhichClosesAfterBreakDuration()
    {
        var image = FakeUpstream.Image(83);
        upstream.ServeManifest("healthy/app", "v1", image.Manifest);
        upstream.Server.Given(Request.Create().WithPath("/v2/down*").UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(503));
        var clock = new FakeTimeProvider();
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock), upstream.RegistryArgs(
            "--Shadow:Retries", "0", "--Shadow:BreakAfterFailures", "3", "--Shadow:BreakAfterRepositories", "2", "--Shadow:BreakDuration", "00:01:00"));
        using var client = server.CreateClient();

        // 3 failures (BreakAfterFailures) from 3 repositories (BreakAfterRepositories is 2): the host is failing.
        for (var i = 0; i < 3; i++)
        {
            using var failing = await client.GetAsync($"v2/down{i}/app/manifests/v1");
            Assert.Contains("answered 503", await UnavailableMessageAsync(failing));
        }
        Assert.Equal(3, upstream.CountRequests(_ => true));

        using (var open = await client.GetAsync("v2/healthy/app/manifests/v1")) Assert.Contains("circuit open", await UnavailableMessageAsync(open));
        Assert.Equal(3, upstream.CountRequests(_ => true));

        clock.Advance(TimeSpan.FromMinutes(1));
        using (var probe = await client.GetAsync("v2/healthy/app/manifests/v1")) await probe.ExpectAsync(HttpStatusCode.OK);
        // Closed again: the failing repositories reach the upstream and get its own answer.
        using (var failing = await client.GetAsync("v2/down0/app/manifests/v1")) Assert.Contains("answered 503", await UnavailableMessageAsync(failing));
        Assert.Equal(5, upstream.CountRequests(_ => true));
    }

    /// <summary>
    /// A bare HTTP/1.1 upstream, for what WireMock cannot do: close a connection without any response. Each request
    /// gets the bytes <c>respond</c> gives for its method and path, or, for null, its connection is closed.
    /// </summary>
    private sealed class RawUpstream : IDisposable
    {
        public static readonly byte[] NotFound = Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");

        private readonly TcpListener listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource stop = new();
        private readonly ConcurrentQueue<string> paths = new();

        public RawUpstream(Func<string, string, byte[]?> respond)
        {
            listener.Start();
            _ = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    TcpClient connection;
                    try { connection = await listener.AcceptTcpClientAsync(stop.Token); }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
                    _ = Task.Run(() => ServeAsync(connection, respond));
                }
            });
        }

        public string Url => $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";

        public int Count(Func<string, bool> path) => paths.Count(path);

        public static byte[] Ok(string method, byte[] body, string contentType, string digest)
        {
            var head = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: {contentType}\r\nDocker-Content-Digest: {digest}\r\n" +
                $"Content-Length: {body.Length}\r\nConnection: close\r\n\r\n");
            return method == "HEAD" ? head : [.. head, .. body];
        }

        private async Task ServeAsync(TcpClient connection, Func<string, string, byte[]?> respond)
        {
            using (connection)
            {
                try
                {
                    var stream = connection.GetStream();
                    using var reader = new StreamReader(stream, Encoding.ASCII, leaveOpen: true);
                    var requestLine = (await reader.ReadLineAsync(stop.Token))?.Split(' ');
                    while (!string.IsNullOrEmpty(await reader.ReadLineAsync(stop.Token))) { }
                    if (requestLine is not [var method, var target, ..]) return;
                    var path = target.Split('?')[0];
                    paths.Enqueue(path);
                    if (respond(method, path) is { } response) await stream.WriteAsync(response, stop.Token);
                }
                catch (Exception e) when (e is IOException or OperationCanceledException)
                {
                    // The registry went away first: nothing to answer.
                }
            }
        }

        public void Dispose()
        {
            stop.Cancel();
            listener.Stop();
        }
    }
}
