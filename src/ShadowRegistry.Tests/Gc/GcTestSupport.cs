using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Domain;
using ShadowRegistry.Gc;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Gc;

/// <summary>A registry on a fake clock with its scheduled collection off: the tests run collections themselves.</summary>
public sealed class GcServer : IAsyncDisposable
{
    private GcServer(RegistryServer server, FakeTimeProvider clock)
    {
        Server = server;
        Clock = clock;
    }

    public RegistryServer Server { get; }

    /// <summary>Starts at the real now, so the filesystem's own times (of blobs without use records) agree with it.</summary>
    public FakeTimeProvider Clock { get; }

    public static Task<GcServer> StartAsync(string driver, params string[] extraArgs) => StartAsync(driver, null, extraArgs);

    /// <summary>A server over the given driver (a test's wrapper around an in-memory one).</summary>
    public static Task<GcServer> StartOverAsync(IStorageDriver storage, params string[] extraArgs) => StartAsync("inmemory", storage, extraArgs);

    private static async Task<GcServer> StartAsync(string driver, IStorageDriver? storage, string[] extraArgs)
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var server = await RegistryServer.StartAsync(services =>
        {
            services.AddSingleton<TimeProvider>(clock);
            if (storage is not null) services.AddSingleton(storage);
        },
            // The janitors of uploads and changes stay out of the way too: the collection does their work when the test says.
            ["--Registry:Storage:Driver", driver, "--Registry:Gc:Enabled", "false", "--Registry:UploadCleanupInterval", "10.00:00:00",
             "--Changes:CleanupInterval", "10.00:00:00", .. extraArgs]);
        return new GcServer(server, clock);
    }

    public Task<GcReport> CollectAsync(bool dryRun = false) =>
        Server.Services.GetRequiredService<GarbageCollector>().RunAsync(dryRun, CancellationToken.None);

    /// <summary>Whether the shared store holds the blob's bytes, whatever repository links it.</summary>
    public async Task<bool> StoresAsync(string digest) =>
        await Server.Services.GetRequiredService<BlobStore>().GetSizeAsync(Digest.Parse(digest), CancellationToken.None) is not null;

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}

public static class GcHttp
{
    /// <summary>Pushes the layers (each once, monolithically) and a config, then an image manifest of them.</summary>
    public static async Task<string> PushImageOfAsync(this HttpClient client, string repository, string reference, IEnumerable<byte[]> layers,
        string configSeed, JsonObject? subject = null)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{configSeed}\"}}");
        var configDigest = await client.PushBlobAsync(repository, config);
        var nodes = new JsonArray();
        foreach (var layer in layers) nodes.Add(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", await client.PushBlobAsync(repository, layer), layer.Length));
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", configDigest, config.Length),
            ["layers"] = nodes,
        };
        if (subject is not null) manifest["subject"] = subject;
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        using var response = await client.PutManifestAsync(repository, reference, bytes, OciHttp.OciManifest);
        await response.ExpectAsync(HttpStatusCode.Created);
        return OciHttp.Sha256(bytes);
    }

    /// <summary>The manifest's size as stored, to describe it in an index or as a subject.</summary>
    public static async Task<JsonObject> DescribeAsync(this HttpClient client, string repository, string digest)
    {
        var (bytes, mediaType, _) = await client.GetManifestBytesAsync(repository, digest);
        return OciHttp.Descriptor(mediaType, digest, bytes.Length);
    }

    /// <summary>GET of an image manifest or index: its bytes, media type and the digest the registry says it has.</summary>
    private static async Task<(byte[] Bytes, string MediaType, string Digest)> GetManifestBytesAsync(this HttpClient client, string repository, string reference)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{reference}");
        request.Headers.Accept.ParseAdd(OciHttp.OciManifest);
        request.Headers.Accept.ParseAdd(OciHttp.OciIndex);
        using var response = await client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
        return (await response.Content.ReadAsByteArrayAsync(), response.Content.Headers.ContentType!.MediaType!, response.Headers.GetValues("Docker-Content-Digest").Single());
    }

    /// <summary>Every blob and child the manifest names, read back and checked against its digest; the manifest's own bytes too.</summary>
    public static async Task AssertWholeAsync(this HttpClient client, string repository, string reference)
    {
        var (bytes, _, digestSaid) = await client.GetManifestBytesAsync(repository, reference);
        Assert.Equal(digestSaid, OciHttp.Sha256(bytes));
        var manifest = JsonNode.Parse(bytes)!.AsObject();
        if (manifest["manifests"] is JsonArray children)
        {
            foreach (var child in children) await client.AssertWholeAsync(repository, child!["digest"]!.GetValue<string>());
            return;
        }
        foreach (var descriptor in manifest["layers"]!.AsArray().Append(manifest["config"]))
        {
            var digest = descriptor!["digest"]!.GetValue<string>();
            using var blob = await client.GetAsync($"v2/{repository}/blobs/{digest}");
            await blob.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(digest, OciHttp.Sha256(await blob.Content.ReadAsByteArrayAsync()));
        }
    }
}
