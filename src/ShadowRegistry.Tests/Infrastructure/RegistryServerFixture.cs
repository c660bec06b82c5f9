namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>One registry per test class; tests keep apart by using their own repository names.</summary>
public sealed class RegistryServerFixture : IAsyncLifetime
{
    public RegistryServer Server { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await RegistryServer.StartAsync();
        Client = Server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
