using System.Net;
using System.Text;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// Every request body is bounded by Registry:MaxRequestBodyBytes unless its endpoint streams it (blob uploads) or has
/// its own bound (manifest PUT: Registry:MaxManifestBytes). Once the server-wide limit was off entirely.
/// </summary>
public abstract class BodyLimitTests : IAsyncLifetime
{
    /// <summary>The storage driver's arguments.</summary>
    protected abstract string[] DriverArguments { get; }

    private RegistryServer server = null!;
    private HttpClient client = null!;

    public async Task InitializeAsync()
    {
        server = await RegistryServer.StartAsync(["--Registry:MaxRequestBodyBytes", "65536", "--Registry:MaxManifestBytes", "262144", .. DriverArguments]);
        client = server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task BlobUploadsAreNotBoundedByTheServerWideLimit()
    {
        var blob = OciHttp.RandomBytes(1024 * 1024, 51);
        await client.PushBlobAsync("limits/blobs", blob);
        await client.PushBlobChunkedAsync("limits/blobs", OciHttp.RandomBytes(1024 * 1024, 52), chunkSize: 300 * 1024);
        // Chunked transfer encoding (no Content-Length) too.
        using var start = await client.PostAsync("v2/limits/blobs/blobs/uploads/", null);
        var digest = OciHttp.Sha256(blob);
        using var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(start.Headers.Location!, $"digest={digest}"))
        {
            Content = new StreamContent(new MemoryStream(blob)),
        };
        put.Headers.TransferEncodingChunked = true;
        using var finished = await client.SendAsync(put);
        await finished.ExpectAsync(HttpStatusCode.Created);
    }

    [Fact]
    public async Task ManifestPutIsBoundedByTheManifestLimitNotTheServerWideOne()
    {
        // 128 KiB: over the server-wide 64 KiB, under the 256 KiB manifest limit.
        var (manifest, _) = await client.PushImageAsync("limits/manifests", "small", seed: 53);
        var padded = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(manifest).TrimEnd('}') + ",\"annotations\":{\"pad\":\"" + new string('x', 128 * 1024) + "\"}}");
        using var ok = await client.PutManifestAsync("limits/manifests", "padded", padded, OciHttp.OciManifest);
        await ok.ExpectAsync(HttpStatusCode.Created);

        // Over the manifest limit, without a Content-Length to refuse it up front: 413 once the limit is reached.
        var huge = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(manifest).TrimEnd('}') + ",\"annotations\":{\"pad\":\"" + new string('x', 300 * 1024) + "\"}}");
        var content = new StreamContent(new MemoryStream(huge));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(OciHttp.OciManifest);
        using var request = new HttpRequestMessage(HttpMethod.Put, "v2/limits/manifests/manifests/huge") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var tooLarge = await client.SendAsync(request);
        await tooLarge.ExpectErrorAsync(HttpStatusCode.RequestEntityTooLarge, "MANIFEST_INVALID");
    }

    [Fact]
    public void ServerWideLimitIsConfigured()
    {
        var kestrel = server.Services.GetService(typeof(Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>))
            as Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>;
        Assert.Equal(65536, kestrel!.Value.Limits.MaxRequestBodySize);
    }
}

public sealed class BodyLimitTestsOnFilesystem : BodyLimitTests
{
    protected override string[] DriverArguments => [];
}

public sealed class BodyLimitTestsInMemory : BodyLimitTests
{
    protected override string[] DriverArguments => ["--Registry:Storage:Driver", "inmemory"];
}
