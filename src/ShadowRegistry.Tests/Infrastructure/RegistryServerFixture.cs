namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>One registry per test class; tests keep apart by using their own repository names.</summary>
public class RegistryServerFixture : IAsyncLifetime
{
    public RegistryServer Server { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    /// <summary>Command-line arguments of the registry, e.g. the storage driver to use.</summary>
    public virtual string[] Arguments => [];

    public async Task InitializeAsync()
    {
        Server = await RegistryServer.StartAsync(Arguments);
        Client = Server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>The same over the in-memory storage driver, so API tests show both drivers behave alike to clients.</summary>
public sealed class InMemoryRegistryServerFixture : RegistryServerFixture
{
    public override string[] Arguments => ["--Registry:Storage:Driver", "inmemory"];
}
