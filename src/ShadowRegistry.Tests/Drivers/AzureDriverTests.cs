using Azure.Storage.Blobs;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>Azurite, the Azure Storage emulator, started once for the test run from .ci/emulators.</summary>
public static class Azurite
{
    public const string Binary = "azurite-blob";

    /// <summary>The emulator's well-known development account (public, documented by Microsoft; not a secret).</summary>
    public const string AccountName = "devstoreaccount1";

    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly Lazy<ObjectStoreEmulator> Emulator = new(() => ObjectStoreEmulator.Start(Binary, (port, data) =>
        ["--blobHost", "127.0.0.1", "--blobPort", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--location", data,
         "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent"]));

    public static string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};BlobEndpoint={Emulator.Value.Endpoint}/{AccountName};";

    /// <summary>A fresh container of its own, created.</summary>
    public static BlobContainerClient NewContainer()
    {
        ObjectStoreEmulator.SkipUnlessAvailable(Binary);
        var container = new BlobContainerClient(ConnectionString, $"test-{Guid.NewGuid():N}");
        container.Create();
        return container;
    }
}

/// <summary>The contract on the Azure Blob driver against Azurite; "another process" is a second driver on the same container.</summary>
public sealed class AzureDriverContractTests : StorageDriverContract
{
    // One container however many threads ask first: with `??=`, drivers made at once each got a container of their own.
    private readonly Lazy<BlobContainerClient> container = new(Azurite.NewContainer);

    // A small block size, so the contract's writes span several blocks and truncation cuts inside one.
    protected override IStorageDriver CreateDriver() => new AzureBlobDriver(container.Value, "registry/root", blockSize: 64 * 1024);

    protected override IStorageDriver CreateDriverOnSameStore() => new AzureBlobDriver(container.Value, "registry/root", blockSize: 64 * 1024);

    public override void Dispose()
    {
        if (container.IsValueCreated) container.Value.DeleteIfExists();
        base.Dispose();
    }
}

/// <summary>What only the object-store drivers offer: download redirects, here to a SAS URL of the blob, when configured.</summary>
public sealed class AzureDriverTests
{
    [SkippableFact]
    public async Task SasRedirectsServeTheBlobReadOnlyWhenEnabled()
    {
        var container = Azurite.NewContainer();
        var driver = new AzureBlobDriver(container, "registry", redirectExpiry: TimeSpan.FromMinutes(5));
        var content = System.Security.Cryptography.RandomNumberGenerator.GetBytes(10_000);
        await driver.PutContentAsync("/blobs/sha256/ab/abc/data", content, CancellationToken.None);

        using var http = new HttpClient();
        var get = (await driver.RedirectUrlAsync("/blobs/sha256/ab/abc/data", HttpMethod.Get, CancellationToken.None))!;
        Assert.Equal(content, await http.GetByteArrayAsync(get));
        var head = (await driver.RedirectUrlAsync("/blobs/sha256/ab/abc/data", HttpMethod.Head, CancellationToken.None))!;
        using (var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, head)))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(content.Length, response.Content.Headers.ContentLength);
        }
        // Read only: the URL does not let its holder overwrite the blob.
        using (var put = new HttpRequestMessage(HttpMethod.Put, get) { Content = new ByteArrayContent([1, 2, 3]) })
        {
            put.Headers.Add("x-ms-blob-type", "BlockBlob");
            using var refused = await http.SendAsync(put);
            Assert.Equal(System.Net.HttpStatusCode.Forbidden, refused.StatusCode);
        }
        Assert.Equal(content, await driver.GetContentAsync("/blobs/sha256/ab/abc/data", CancellationToken.None));

        // Off by default: the registry serves the bytes itself.
        Assert.Null(await new AzureBlobDriver(container, "registry").RedirectUrlAsync("/blobs/sha256/ab/abc/data", HttpMethod.Get, CancellationToken.None));
        // A client holding only a SAS cannot sign one: refused when built, not on the first pull.
        var sasOnly = new BlobContainerClient(container.GenerateSasUri(Azure.Storage.Sas.BlobContainerSasPermissions.All, DateTimeOffset.UtcNow.AddHours(1)));
        var refusedStart = Assert.Throws<InvalidOperationException>(() => new AzureBlobDriver(sasOnly, "registry", redirectExpiry: TimeSpan.FromMinutes(5)));
        Assert.Contains("RedirectDownloads needs the account key", refusedStart.Message);
        container.DeleteIfExists();
    }

    [SkippableFact]
    public async Task WithRedirectsTheRegistrySendsBlobPullsToTheStore()
    {
        await using var server = await RegistryServer.StartAsync([.. ObjectStores.Arguments(ObjectStores.Azure), "--Registry:Storage:Azure:RedirectDownloads", "true"]);
        using var client = server.CreateClient();
        var content = OciHttp.RandomBytes(100_000, 1700);
        var digest = await client.PushBlobAsync("redirect/azure", content);

        using var noFollow = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        using var redirect = await noFollow.GetAsync($"v2/redirect/azure/blobs/{digest}");
        Assert.Equal(System.Net.HttpStatusCode.TemporaryRedirect, redirect.StatusCode);
        Assert.Contains("sig=", redirect.Headers.Location!.Query);
        // A client following the redirect gets the bytes from Azurite.
        Assert.Equal(content, await client.GetByteArrayAsync($"v2/redirect/azure/blobs/{digest}"));
    }
}
