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
    protected override string? SkipReason => ObjectStores.SkipReason(ObjectStores.Azure);

    /// <summary>A container of its own each time: a test that starts a server of its own on these arguments gets its own store.</summary>
    public override string[] Arguments => ObjectStores.Arguments(ObjectStores.Azure);
}

/// <summary>The same over the s3 driver on s3rver (a bucket of its own); skipped as the Azure one is.</summary>
public sealed class S3RegistryServerFixture : RegistryServerFixture
{
    protected override string? SkipReason => ObjectStores.SkipReason(ObjectStores.S3);

    /// <summary>A bucket of its own each time, as for Azure.</summary>
    public override string[] Arguments => ObjectStores.Arguments(ObjectStores.S3);
}
