namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>One registry per test class; tests keep apart by using their own repository names.</summary>
public class RegistryServerFixture : IAsyncLifetime
{
    private RegistryServer? server;
    private HttpClient? client;

    /// <summary>The registry; a test of a class whose store is missing here skips when it asks for it.</summary>
    public RegistryServer Server => SkipReason is { } reason ? throw new SkipException(reason) : server!;

    public HttpClient Client => SkipReason is { } reason ? throw new SkipException(reason) : client!;

    /// <summary>Command-line arguments of the registry, e.g. the storage driver to use.</summary>
    public virtual string[] Arguments => [];

    /// <summary>Why the registry cannot run here (an emulator not installed), or null.</summary>
    protected virtual string? SkipReason => null;

    public async Task InitializeAsync()
    {
        if (SkipReason is not null) return;
        server = await RegistryServer.StartAsync(Arguments);
        client = server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client?.Dispose();
        if (server is not null) await server.DisposeAsync();
    }
}

/// <summary>The same over the in-memory storage driver, so API tests show both drivers behave alike to clients.</summary>
public sealed class InMemoryRegistryServerFixture : RegistryServerFixture
{
    public override string[] Arguments => ["--Registry:Storage:Driver", "inmemory"];
}

/// <summary>
/// The same over the azure driver on Azurite (a container of its own), so API tests show it behaves alike to clients.
/// Skipped with the reason when the emulator is not installed (failing under CI=true).
/// </summary>
public sealed class AzureRegistryServerFixture : RegistryServerFixture
{
    protected override string? SkipReason => EmulatorSkipReason(Drivers.Azurite.Binary);

    /// <summary>A container of its own each time: a test that starts a server of its own on these arguments gets its own store.</summary>
    public override string[] Arguments =>
    [
        "--Registry:Storage:Driver", "azure", "--Registry:Storage:Azure:ConnectionString", Drivers.Azurite.ConnectionString,
        "--Registry:Storage:Azure:Container", $"api-{Guid.NewGuid():N}", "--Registry:Storage:Azure:BlockSize", "65536",
    ];

    internal static string? EmulatorSkipReason(string binary)
    {
        var reason = ObjectStoreEmulator.Unavailable(binary);
        if (reason is not null && Environment.GetEnvironmentVariable("CI") == "true") throw new InvalidOperationException($"CI=true but {reason}");
        return reason;
    }
}

/// <summary>The same over the s3 driver on s3rver (a bucket of its own); skipped as the Azure one is.</summary>
public sealed class S3RegistryServerFixture : RegistryServerFixture
{
    protected override string? SkipReason => AzureRegistryServerFixture.EmulatorSkipReason(Drivers.S3rver.Binary);

    /// <summary>A bucket of its own each time, as for Azure.</summary>
    public override string[] Arguments => BucketArguments(Drivers.S3rver.NewBucket(5 * 1024 * 1024));

    private static string[] BucketArguments(Storage.Drivers.S3DriverOptions bucket) =>
    [
        "--Registry:Storage:Driver", "s3", "--Registry:Storage:S3:Bucket", bucket.Bucket, "--Registry:Storage:S3:Endpoint", bucket.Endpoint!,
        "--Registry:Storage:S3:ForcePathStyle", "true", "--Registry:Storage:S3:AccessKey", Drivers.S3rver.AccessKey,
        "--Registry:Storage:S3:SecretKey", Drivers.S3rver.SecretKey, "--Registry:Storage:S3:CreateBucket", "true",
        "--Registry:Storage:S3:PartSize", "5242880",
    ];
}
