using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ShadowRegistry.Hosting;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>Registry:Storage:Driver picks the driver repository metadata goes through.</summary>
public sealed class StorageDriverOptionTests
{
    private static async Task<List<string?>> ListAsync(HttpClient client, string url, string property)
    {
        using var response = await client.GetAsync(url);
        await response.ExpectAsync(HttpStatusCode.OK);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty(property).EnumerateArray().Select(e => e.GetString()).ToList();
    }

    [Fact]
    public async Task TheInMemoryDriverServesTheWholeManifestLifecycleWithNothingOnDisk()
    {
        await using var server = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        Assert.IsType<InMemoryDriver>(server.Services.GetRequiredService<IStorageDriver>());
        using var client = server.CreateClient();

        var (_, digest) = await client.PushImageAsync("mem/app", "v1", seed: 61);
        await client.PushImageAsync("mem/app", "v2", seed: 62);
        using (var get = await client.GetAsync("v2/mem/app/manifests/v1"))
        {
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());
        }
        Assert.Equal(["v1", "v2"], await ListAsync(client, "v2/mem/app/tags/list", "tags"));
        Assert.Equal(["mem/app"], await ListAsync(client, "v2/_catalog", "repositories"));

        using (var delete = await client.DeleteAsync($"v2/mem/app/manifests/{digest}")) await delete.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Equal(["v2"], await ListAsync(client, "v2/mem/app/tags/list", "tags"));
        using (var gone = await client.GetAsync("v2/mem/app/manifests/v1")) await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // Nothing goes to disk: blobs and upload sessions go through the driver too.
        Assert.Empty(Directory.EnumerateFileSystemEntries(server.StorageRoot, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task TheFilesystemDriverIsTheDefault()
    {
        await using var server = await RegistryServer.StartAsync();
        Assert.IsType<FilesystemDriver>(server.Services.GetRequiredService<IStorageDriver>());
    }

    [Fact]
    public async Task AnUnknownDriverRefusesToStart()
    {
        using var scratch = new ScratchDirectory("driver");
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            // Building already reads the options (Kestrel's limits), so the refusal may come from either step.
            await using var app = RegistryApp.Build(["--urls", "http://127.0.0.1:0", "--Registry:StorageRoot", scratch.Path, "--Registry:Storage:Driver", "ftp"]);
            await app.StartAsync();
        });
        Assert.Contains("Storage:Driver must be filesystem, s3, azure or inmemory", refused.Message);
    }
}
