using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Hosting;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A real registry on Kestrel, on a free loopback port, with its own storage folder; disposed with the test. In the
/// test process, or, where <see cref="PublishedRegistry.BinaryVariable"/> names a published executable, as that process
/// (tests that replace or read the server's services need the in-process one and fail saying so).
/// </summary>
public sealed class RegistryServer : IAsyncDisposable
{
    private readonly WebApplication? app;
    private readonly PublishedRegistry? process;
    private readonly FinishedRequests? finished;
    private readonly bool ownsStorageRoot;

    private RegistryServer(WebApplication? app, PublishedRegistry? process, string storageRoot, bool ownsStorageRoot, Uri baseAddress, FinishedRequests? finished)
    {
        this.app = app;
        this.process = process;
        StorageRoot = storageRoot;
        this.ownsStorageRoot = ownsStorageRoot;
        BaseAddress = baseAddress;
        this.finished = finished;
    }

    public string StorageRoot { get; }

    /// <summary>Requests the server has finished handling, for tests whose client gave up on one.</summary>
    public FinishedRequests Finished => finished ?? throw InProcessOnly("watches the requests it finishes");

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri BaseAddress { get; }

    /// <summary>127.0.0.1:PORT, the registry host as container tools name it.</summary>
    public string HostPort => $"{BaseAddress.Host}:{BaseAddress.Port}";

    public IServiceProvider Services => app?.Services ?? throw InProcessOnly("reads its services");

    private static InvalidOperationException InProcessOnly(string what) =>
        new($"this test {what}, which needs the in-process server; it cannot run against {PublishedRegistry.BinaryVariable}");

    public static Task<RegistryServer> StartAsync(params string[] extraArgs) => StartAsync(null, extraArgs);

    /// <param name="overrideServices">Replaces registered services, e.g. the <see cref="TimeProvider"/> with a fake clock.</param>
    public static Task<RegistryServer> StartAsync(Action<IServiceCollection>? overrideServices, params string[] extraArgs)
    {
        var storageRoot = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(storageRoot);
        return StartAsync(storageRoot, ownsStorageRoot: true, overrideServices, extraArgs);
    }

    /// <summary>A registry over an existing storage root (prepared by the test, or a mount); the caller removes it.</summary>
    public static Task<RegistryServer> StartOnAsync(string storageRoot, params string[] extraArgs) =>
        StartAsync(storageRoot, ownsStorageRoot: false, null, extraArgs);

    /// <inheritdoc cref="StartOnAsync(string, string[])"/>
    /// <param name="overrideServices">Replaces registered services, e.g. the <see cref="TimeProvider"/> with a fake clock.</param>
    public static Task<RegistryServer> StartOnAsync(string storageRoot, Action<IServiceCollection>? overrideServices, params string[] extraArgs) =>
        StartAsync(storageRoot, ownsStorageRoot: false, overrideServices, extraArgs);

    private static async Task<RegistryServer> StartAsync(string storageRoot, bool ownsStorageRoot, Action<IServiceCollection>? overrideServices, string[] extraArgs)
    {
        string[] args =
        [
            "--urls", "http://127.0.0.1:0",
            "--Registry:StorageRoot", storageRoot,
            "--Serilog:MinimumLevel:Default", "Warning",
            .. extraArgs,
        ];
        if (PublishedRegistry.Binary is { } binary)
        {
            if (overrideServices is not null) throw InProcessOnly("replaces services");
            var (process, url) = await PublishedRegistry.StartAsync(binary, args);
            return new RegistryServer(null, process, storageRoot, ownsStorageRoot, new Uri(url + "/"), null);
        }
        var finished = new FinishedRequests();
        var app = RegistryApp.Build(args, services =>
        {
            services.AddSingleton<IStartupFilter>(new FinishedRequests.StartupFilter(finished));
            overrideServices?.Invoke(services);
        });
        await app.StartAsync();
        var address = new Uri(app.Urls.First().Replace("[::]", "127.0.0.1") + "/");
        return new RegistryServer(app, null, storageRoot, ownsStorageRoot, address, finished);
    }

    public HttpClient CreateClient() => new() { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(2) };

    public async ValueTask DisposeAsync()
    {
        if (process is not null) await process.DisposeAsync();
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        if (!ownsStorageRoot) return;
        try
        {
            Directory.Delete(StorageRoot, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder must not fail a test.
        }
    }
}
