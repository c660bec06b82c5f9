using Serilog;
using Serilog.Events;
using ShadowRegistry.Api;
using ShadowRegistry.Auth;
using ShadowRegistry.Configuration;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Hosting;

/// <summary>Builds the registry web application; shared by the CLI and the tests so both run the same wiring.</summary>
public static class RegistryApp
{
    public const string DefaultUrl = "http://127.0.0.1:5000";

    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
        {
            ["--data"] = $"{RegistryOptions.Section}:{nameof(RegistryOptions.StorageRoot)}",
            ["--listen"] = "urls",
        });
        if (string.IsNullOrEmpty(builder.Configuration["urls"])) builder.WebHost.UseUrls(DefaultUrl);

        // Blobs are layers of any size: the limit that matters is the disk, and bodies are streamed.
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = null);

        builder.Services.AddSerilog((services, logger) => logger
            .ReadFrom.Configuration(builder.Configuration)
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .Enrich.FromLogContext()
            .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {Properties:j}{NewLine}{Exception}"));

        builder.Services.AddOptions<RegistryOptions>()
            .Bind(builder.Configuration.GetSection(RegistryOptions.Section))
            .Validate(o => o.MaxManifestBytes > 0 && o.MaxPageSize > 0, "MaxManifestBytes and MaxPageSize must be positive")
            .Validate(o => o.UploadExpiry > TimeSpan.Zero && o.UploadCleanupInterval > TimeSpan.Zero, "UploadExpiry and UploadCleanupInterval must be positive")
            .Validate(o => o.TemporaryFileExpiry > TimeSpan.Zero, "TemporaryFileExpiry must be positive")
            .Validate(o => o.CatalogRefreshInterval > TimeSpan.Zero, "CatalogRefreshInterval must be positive")
            .ValidateOnStart();
        builder.Services.AddOptions<ShadowOptions>().Bind(builder.Configuration.GetSection(ShadowOptions.Section));
        builder.Services.AddSingleton(TimeProvider.System);
        AddStorage(builder.Services);
        AddUpstream(builder.Services);
        AddApi(builder.Services);
        builder.AddRegistryAuth();
        builder.AddRegistryTls();

        var app = builder.Build();
        app.UseSerilogRequestLogging(options =>
        {
            options.MessageTemplate = "{RequestMethod} {RequestPath} responded {StatusCode} in {Elapsed:0.0} ms";
        });
        app.UseMiddleware<RegistryErrorMiddleware>();
        app.UseRegistryAuth();
        var routes = app.Services.GetRequiredService<RegistryRoutes>();
        app.Map("/v2", routes.DispatchAsync);
        app.Map("/v2/{**path}", routes.DispatchAsync);
        return app;
    }

    private static void AddStorage(IServiceCollection services)
    {
        services.AddSingleton<StorageLayout>();
        services.AddSingleton<BlobStore>();
        services.AddSingleton<UploadHashStates>();
        services.AddSingleton<UploadStore>();
        services.AddSingleton<CrashDebris>();
        services.AddHostedService<StorageJanitor>();
        services.AddSingleton<BlobLinks>();
        services.AddSingleton<TagStore>();
        services.AddSingleton<ManifestRevisions>();
        services.AddSingleton<ReferrerIndex>();
        services.AddSingleton<RepositoryCatalog>();
        services.AddSingleton<ManifestService>();
    }

    private static void AddUpstream(IServiceCollection services)
    {
        services.AddSingleton<RepositoryResolver>();
        services.AddSingleton<UpstreamResilience>();
        services.AddSingleton<UpstreamTokenProvider>();
        services.AddSingleton<UpstreamManifestCache>();
        services.AddSingleton<UpstreamClient>();
        services.AddSingleton<UpstreamManifests>();
        services.AddSingleton<UpstreamReferences>();
        services.AddSingleton<UpstreamBlobFetcher>();
        services.AddSingleton<UpstreamBlobForwarder>();
        services.AddTransient<UpstreamAuthHandler>();
        services.AddHttpForwarder();

        // Registry calls: auth inside the resilience policies, so a retried attempt is re-authenticated. Redirects are
        // followed by the socket handler, which drops the Authorization header when it does.
        services.AddHttpClient(UpstreamClient.HttpClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                AllowAutoRedirect = true,
                MaxAutomaticRedirections = 5,
                AutomaticDecompression = System.Net.DecompressionMethods.None,
                UseCookies = false,
                ConnectTimeout = TimeSpan.FromSeconds(10),
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            })
            .AddPolicyHandler((provider, request) => provider.GetRequiredService<UpstreamResilience>().For(request))
            .AddHttpMessageHandler<UpstreamAuthHandler>();
        services.AddHttpClient(UpstreamTokenProvider.TokenClient, client => client.Timeout = TimeSpan.FromSeconds(30))
            .AddPolicyHandler((provider, request) => provider.GetRequiredService<UpstreamResilience>().For(request));
    }

    private static void AddApi(IServiceCollection services)
    {
        services.AddSingleton<BaseEndpoints>();
        services.AddSingleton<BlobEndpoints>();
        services.AddSingleton<UploadEndpoints>();
        services.AddSingleton<ManifestEndpoints>();
        services.AddSingleton<TagEndpoints>();
        services.AddSingleton<ReferrerEndpoints>();
        services.AddSingleton<RegistryRoutes>();
    }
}
