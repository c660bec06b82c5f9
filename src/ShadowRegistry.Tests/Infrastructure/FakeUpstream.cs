using System.Net;
using System.Net.Sockets;
using System.Text;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>A WireMock.Net upstream registry on 127.0.0.1, with helpers to serve manifests, blobs and tags.</summary>
public sealed class FakeUpstream : IDisposable
{
    private FakeUpstream(WireMockServer server) => Server = server;

    public WireMockServer Server { get; }

    public string Url => Server.Url!;

    /// <param name="port">A given port, e.g. one an upstream that was down comes back on; otherwise a free one.</param>
    public static FakeUpstream Start(int? port = null) =>
        new(WireMockServer.Start(new WireMockServerSettings { Urls = [$"http://127.0.0.1:{port ?? FreePort()}"], StartAdminInterface = false }));

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// Registry arguments making this the default upstream "up.test", with short retry delays for tests. The attempt
    /// timeout stays at its default: tests that count upstream requests must not see a retry because a loaded
    /// machine was slow.
    /// </summary>
    public string[] RegistryArgs(params string[] more) =>
    [
        "--Shadow:Upstreams:up.test:Url", Url,
        "--Shadow:Upstreams:up.test:Default", "true",
        "--Shadow:RetryBaseDelay", "00:00:00.020",
        .. more,
    ];

    public void ServeManifest(string repository, string reference, byte[] manifest, string mediaType = OciHttp.OciManifest, string? digest = null) =>
        Serve($"/v2/{repository}/manifests/{reference}", manifest, mediaType, digest ?? OciHttp.Sha256(manifest));

    public void ServeBlob(string repository, byte[] content) =>
        Serve($"/v2/{repository}/blobs/{OciHttp.Sha256(content)}", content, "application/octet-stream", OciHttp.Sha256(content));

    /// <summary>GET with the body; HEAD with the headers a registry sends (Content-Length included) and no body.</summary>
    private void Serve(string path, byte[] content, string mediaType, string digest)
    {
        Server.Given(Request.Create().WithPath(path).UsingGet())
            .RespondWith(Response.Create().WithStatusCode(200)
                .WithHeader("Content-Type", mediaType)
                .WithHeader("Docker-Content-Digest", digest)
                .WithBody(content));
        Server.Given(Request.Create().WithPath(path).UsingHead())
            .RespondWith(Response.Create().WithStatusCode(200)
                .WithHeader("Content-Type", mediaType)
                .WithHeader("Docker-Content-Digest", digest)
                .WithHeader("Content-Length", content.Length.ToString()));
    }

    public void ServeTags(string repository, params string[] tags)
    {
        var body = $"{{\"name\":\"{repository}\",\"tags\":[{string.Join(',', tags.Select(t => $"\"{t}\""))}]}}";
        Server.Given(Request.Create().WithPath($"/v2/{repository}/tags/list").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody(body));
    }

    /// <summary>A small OCI image manifest referencing a config and one layer, with the blobs it names.</summary>
    public static (byte[] Manifest, string Digest, byte[] Config, byte[] Layer) Image(int seed)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"upstream\":{seed}}}");
        var layer = OciHttp.RandomBytes(3000, seed);
        var manifest = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"{OciHttp.OciManifest}\"," +
            $"\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{OciHttp.Sha256(config)}\",\"size\":{config.Length}}}," +
            $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{OciHttp.Sha256(layer)}\",\"size\":{layer.Length}}}]}}");
        return (manifest, OciHttp.Sha256(manifest), config, layer);
    }

    public int CountRequests(Func<WireMock.RequestMessage, bool> predicate) =>
        Server.LogEntries.Count(entry => predicate((WireMock.RequestMessage)entry.RequestMessage));

    public void Dispose() => Server.Stop();
}
