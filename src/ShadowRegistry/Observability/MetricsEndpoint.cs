using Microsoft.Extensions.Options;
using Prometheus;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Observability;

/// <summary>
/// Serves <c>/metrics</c> in the Prometheus text format (OpenMetrics when the scraper asks for it): on the registry's
/// own addresses by default, or on a server of its own (<see cref="MetricsOptions.Listen"/>), or not at all. Like
/// <c>/healthz</c> it sits outside /v2, so the registry's authentication never guards it; who may scrape it is decided
/// by where it listens.
/// </summary>
public static class MetricsEndpoint
{
    public static void Map(WebApplication app)
    {
        if (!app.Services.GetRequiredService<IOptions<MetricsOptions>>().Value.OnMainListener) return;
        var registry = app.Services.GetRequiredService<RegistryMetrics>().Registry;
        app.MapMetrics(settings => settings.Registry = registry, MetricsOptions.Path);
    }

    /// <summary>Where the metrics are, for the start-up line.</summary>
    public static string Describe(IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<MetricsOptions>>().Value;
        if (!options.Enabled) return "off";
        if (options.OnMainListener) return MetricsOptions.Path;
        return string.Join(' ', services.GetRequiredService<MetricsServer>().Urls.Select(url => url + MetricsOptions.Path));
    }
}

/// <summary>
/// The server of its own that <see cref="MetricsOptions.Listen"/> asks for: it answers <c>/metrics</c> and 404 to
/// anything else, so the registry API is never reachable through it. Built from the empty host builder: no
/// configuration files, no logging, nothing to start but Kestrel. With <c>https</c> addresses it serves the
/// registry's certificate (<c>Registry:Tls</c>).
/// </summary>
public sealed class MetricsServer(IOptions<MetricsOptions> options, IConfiguration configuration, RegistryMetrics metrics) : IHostedService, IAsyncDisposable
{
    private WebApplication? app;

    /// <summary>The addresses it listens on once started, ports chosen by the system (port 0) included.</summary>
    public IReadOnlyList<string> Urls => app?.Urls.ToList() ?? [];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!settings.Enabled || settings.OnMainListener) return;
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().UseKestrelHttpsConfiguration().UseUrls([.. settings.ListenUrls]);
        var tls = configuration.GetSection(TlsOptions.Section).Get<TlsOptions>();
        if (!string.IsNullOrEmpty(tls?.CertificatePath))
        {
            var (certificate, chain) = TlsSetup.Load(tls);
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https =>
            {
                https.ServerCertificate = certificate;
                https.ServerCertificateChain = chain;
            }));
        }
        var server = builder.Build();
        server.UseMetricServer(scrape => scrape.Registry = metrics.Registry, MetricsOptions.Path);
        server.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        try
        {
            await server.StartAsync(cancellationToken);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        app = server;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (app is not null) await app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (app is not null) await app.DisposeAsync();
    }
}
