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
    private BlobContainerClient? container;

    // A small block size, so the contract's writes span several blocks and truncation cuts inside one.
    protected override IStorageDriver CreateDriver() => new AzureBlobDriver(container ??= Azurite.NewContainer(), "registry/root", blockSize: 64 * 1024);

    protected override IStorageDriver CreateDriverOnSameStore() => new AzureBlobDriver(container ??= Azurite.NewContainer(), "registry/root", blockSize: 64 * 1024);

    public override void Dispose()
    {
        container?.DeleteIfExists();
        base.Dispose();
    }
}
