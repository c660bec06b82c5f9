using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Api;
using ShadowRegistry.Auth;
using ShadowRegistry.Changes;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Observability;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Sync;
using ShadowRegistry.Ui;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Hosting;

/// <summary>Builds the registry web application; shared by the CLI and the tests so both run the same wiring.</summary>
public static class RegistryApp
{
    public const string DefaultUrl = "http://127.0.0.1:5000";

    /// <summary>The command line's short options and the configuration keys they set.</summary>
    public static Dictionary<string, string> CommandLineSwitches() => new()
    {
        ["--data"] = $"{RegistryOptions.Section}:{nameof(RegistryOptions.StorageRoot)}",
        ["--listen"] = "urls",
        ["--log-format"] = RegistryLogging.FormatKey,
        ["--metrics-listen"] = $"{MetricsOptions.Section}:{nameof(MetricsOptions.Listen)}",
    };

    /// <param name="overrideServices">Replaces registered services after the defaults (tests swap the clock here).</param>
    public static WebApplication Build(string[] args, Action<IServiceCollection>? overrideServices = null)
    {
        // The slim builder leaves out what the registry never uses and every start-up would pay for (in time and
        // resident memory, see docs/benchmark.md): IIS integration, HTTP/3 (QUIC), host filtering, the default logging
        // providers (Serilog is the only one). Configuration files are read once, without a watcher: the registry
        // reads its options at start-up only.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false", .. args],
            ContentRootPath = AppContext.BaseDirectory,
        });
        // https:// listen addresses (Registry:Tls), which the slim builder's Kestrel does not set up by itself.
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.Configuration.AddCommandLine(args, CommandLineSwitches());
        if (string.IsNullOrEmpty(builder.Configuration["urls"])) builder.WebHost.UseUrls(DefaultUrl);

        // Every body is bounded unless its endpoint says otherwise: blob uploads lift the limit (layers of any size are
        // streamed to disk), manifest PUTs set their own (see RegistryRoutes).
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<RegistryOptions>>((kestrel, registry) =>
            kestrel.Limits.MaxRequestBodySize = registry.Value.MaxRequestBodyBytes);

        // Larger transport blocks: layers are received and sent in pieces up to 64 KiB instead of about 2 KiB (see the pool).
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();

        // Checked here, so a wrong value stops the registry with the reason rather than logging nowhere.
        RegistryLogging.Formatter(builder.Configuration[RegistryLogging.FormatKey]);
        builder.Services.AddSerilog((services, logger) => RegistryLogging.Configure(logger, builder.Configuration));

        builder.Services.AddOptions<RegistryOptions>()
            .Bind(builder.Configuration.GetSection(RegistryOptions.Section))
            .Validate(o => o.MaxManifestBytes > 0 && o.MaxPageSize > 0 && o.MaxRequestBodyBytes > 0, "MaxManifestBytes, MaxPageSize and MaxRequestBodyBytes must be positive")
            .Validate(o => o.UploadExpiry > TimeSpan.Zero && o.UploadCleanupInterval > TimeSpan.Zero, "UploadExpiry and UploadCleanupInterval must be positive")
            .Validate(o => o.TemporaryFileExpiry > TimeSpan.Zero, "TemporaryFileExpiry must be positive")
            .Validate(o => o.CatalogRefreshInterval > TimeSpan.Zero, "CatalogRefreshInterval must be positive")
            .Validate(o => o.Gc.Interval > TimeSpan.Zero && o.Gc.GracePeriod > TimeSpan.Zero && o.Gc.LeaseDuration > TimeSpan.Zero
                           && o.Gc.UntaggedAfter is not { Ticks: <= 0 } && o.Gc.CacheMaxAge is not { Ticks: <= 0 } && o.Gc.CacheMaxBytes is not < 0
                           && o.Gc.TagRetention.All(r => r.OlderThan > TimeSpan.Zero && r.Repositories.Count > 0 && r.Repositories.All(p => RepositoryPattern.TryParse(p, out _))),
                "Registry:Gc: Interval, GracePeriod, LeaseDuration, UntaggedAfter, CacheMaxAge and each TagRetention's OlderThan must be positive, "
                + "CacheMaxBytes not negative, and each TagRetention needs Repositories patterns")
            .Validate(o => o.Gc.Parallelism is >= 1 and <= 256, "Registry:Gc:Parallelism must be between 1 and 256")
            .Validate(o => o.Storage.Driver is StorageOptions.Filesystem or StorageOptions.InMemory or StorageOptions.Azure or StorageOptions.S3,
                $"Storage:Driver must be {StorageOptions.Filesystem}, {StorageOptions.S3}, {StorageOptions.Azure} or {StorageOptions.InMemory}")
            .Validate(o => o.Storage.Driver != StorageOptions.S3 || !string.IsNullOrWhiteSpace(o.Storage.S3Bucket.Bucket), "Storage:S3:Bucket is required")
            .Validate(o => o.Storage.Driver != StorageOptions.S3 || o.Storage.S3Bucket.PartSize >= 5 * 1024 * 1024,
                "Storage:S3:PartSize must be at least 5 MiB (5242880), S3's smallest part")
            .Validate(o => o.Storage.Driver != StorageOptions.Azure || !string.IsNullOrWhiteSpace(o.Storage.AzureBlob.ConnectionString)
                           || !string.IsNullOrWhiteSpace(o.Storage.AzureBlob.AccountName), "Storage:Azure needs ConnectionString or AccountName with AccountKey or SasToken")
            .Validate(o => o.Storage.Driver != StorageOptions.Azure || o.Storage.AzureBlob.BlockSize is >= 64 * 1024 and <= 100 * 1024 * 1024,
                "Storage:Azure:BlockSize must be between 64 KiB and 100 MiB")
            .ValidateOnStart();
        builder.Services.AddOptions<ShadowOptions>()
            .Bind(builder.Configuration.GetSection(ShadowOptions.Section))
            .Validate(o => o.BreakAfterFailures > 0 && o.BreakAfterRepositories > 0 && o.BreakDuration > TimeSpan.Zero,
                "BreakAfterFailures, BreakAfterRepositories and BreakDuration must be positive")
            .ValidateOnStart();
        builder.Services.AddOptions<ChangeOptions>()
            .Bind(builder.Configuration.GetSection(ChangeOptions.Section))
            .Validate(o => ChangeId.TryParse(o.PathPrefix, out _), "Changes:PathPrefix must be one lower-case path component")
            .Validate(o => o.DefaultTtl > TimeSpan.Zero && o.MaxTtl >= o.DefaultTtl && o.CleanupInterval > TimeSpan.Zero,
                "Changes:DefaultTtl and CleanupInterval must be positive and MaxTtl at least DefaultTtl")
            .ValidateOnStart();
        builder.Services.AddOptions<ReplicationOptions>()
            .Bind(builder.Configuration.GetSection(ReplicationOptions.Section))
            .Validate(o => o.ReconcileInterval > TimeSpan.Zero && o.RetryDelay > TimeSpan.Zero && o.MaxAttempts > 0 && o.RequestAttempts > 0,
                "Replication:ReconcileInterval and RetryDelay must be positive, MaxAttempts and RequestAttempts at least 1")
            .Validate(o => o.Destinations.Values.All(d => d.Parse() is not null), "Replication:Destinations:<name>:Url must be http(s)://host[:port][/prefix]")
            .Validate(o => o.Destinations.Values.All(d => d.Patterns() is not null), "Replication:Destinations:<name>:Repositories must be repository patterns")
            .Validate(o => string.IsNullOrEmpty(o.SourceUrl) || Uri.TryCreate(o.SourceUrl, UriKind.Absolute, out _), "Replication:SourceUrl must be an absolute URL")
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        AddMetrics(builder);
        AddStorage(builder.Services);
        AddChanges(builder.Services);
        builder.Services.AddSingleton<Gc.GarbageCollector>();
        builder.Services.AddHostedService<Gc.GcScheduler>();
        AddReplication(builder.Services);
        AddUpstream(builder.Services);
        AddApi(builder.Services);
        builder.AddRegistryAuth();
        builder.AddRegistryTls();
        builder.AddRegistryUi();
        builder.Services.AddHealthChecks().AddCheck<StorageHealthCheck>("storage", tags: [HealthEndpoints.ReadyTag]);
        overrideServices?.Invoke(builder.Services);

        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(() => LogBanner(app));
        app.UseSerilogRequestLogging(RegistryLogging.ConfigureRequestLogging);
        app.UseMiddleware<HttpMetricsMiddleware>();
        app.UseMiddleware<RegistryErrorMiddleware>();
        app.UseRegistryAuth();
        HealthEndpoints.Map(app);
        MetricsEndpoint.Map(app);
        app.Services.GetRequiredService<ChangeEndpoints>().Map(app);
        app.MapRegistryUi();
        var routes = app.Services.GetRequiredService<RegistryRoutes>();
        app.Map("/v2", routes.DispatchAsync);
        app.Map("/v2/{**path}", routes.DispatchAsync);
        // Anything else (including paths whose dot segments lead out of /v2) gets an OCI 404 too, not an empty one.
        app.MapFallback(context => throw RegistryError.NotFound(context.Request.Path.Value ?? ""));
        return app;
    }

    /// <summary>One line at start-up that says what this instance is: where it listens, stores, shadows, and who may write.</summary>
    private static void LogBanner(WebApplication app)
    {
        var registry = app.Services.GetRequiredService<IOptions<RegistryOptions>>().Value;
        var upstreams = app.Services.GetRequiredService<IOptions<ShadowOptions>>().Value.Upstreams;
        var auth = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value;
        app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ShadowRegistry").LogInformation(
            "ShadowRegistry listening on {Urls}; {Driver} storage at {StorageRoot}; upstreams: {Upstreams}; authentication: {AuthMode}; metrics: {Metrics}",
            string.Join(' ', app.Urls), registry.Storage.Driver, registry.Storage.Driver switch
            {
                StorageOptions.S3 => $"s3://{registry.Storage.S3Bucket.Bucket}/{registry.Storage.S3Bucket.RootPrefix}",
                StorageOptions.Azure => $"container {registry.Storage.AzureBlob.Container}/{registry.Storage.AzureBlob.RootPrefix}",
                _ => Path.GetFullPath(registry.StorageRoot),
            },
            upstreams.Count == 0 ? "none" : string.Join(", ", upstreams.Select(u => $"{u.Key}={u.Value.Url}{(u.Value.Default ? " (default)" : "")}")),
            !auth.IsEnabled ? "off" : auth.AnonymousPull ? "tokens, anonymous pull" : "tokens, restricted",
            MetricsEndpoint.Describe(app.Services));
    }

    private static void AddMetrics(WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<MetricsOptions>()
            .Bind(builder.Configuration.GetSection(MetricsOptions.Section))
            .Validate(o => o.ListenUrls.All(MetricsOptions.IsValidUrl), "Registry:Metrics:Listen must be http:// or https:// URLs with no path, ';'-separated")
            .ValidateOnStart();
        builder.Services.AddSingleton<RegistryMetrics>();
        builder.Services.AddSingleton<MetricsServer>();
        builder.Services.AddHostedService(provider => provider.GetRequiredService<MetricsServer>());
    }

    private static void AddStorage(IServiceCollection services)
    {
        services.AddSingleton<IStorageDriver>(provider =>
        {
            var options = provider.GetRequiredService<IOptions<RegistryOptions>>().Value;
            if (options.Storage.Driver == StorageOptions.InMemory) return new InMemoryDriver(new InMemoryStore(provider.GetRequiredService<TimeProvider>()));
            if (options.Storage.Driver == StorageOptions.S3)
                return new S3Driver(S3Driver.Client(options.Storage.S3Bucket), options.Storage.S3Bucket, provider.GetRequiredService<TimeProvider>());
            if (options.Storage.Driver == StorageOptions.Azure)
            {
                var azure = options.Storage.AzureBlob;
                return new AzureBlobDriver(AzureBlobDriver.ContainerClient(azure), azure.RootPrefix, azure.BlockSize, provider.GetRequiredService<TimeProvider>(), azure.CreateContainer,
                    azure.WriterLease, azure.RedirectDownloads ? azure.RedirectExpiry : null);
            }
            // The storage root itself, so every path is the file it always was; tags keep their lock files.
            var root = Path.GetFullPath(options.StorageRoot);
            // The top folders exist from the start, as they always have, for operators and tools looking at the root.
            foreach (var folder in new[] { "blobs", "repositories", "tmp", "uploads" }) Directory.CreateDirectory(Path.Combine(root, folder));
            return new FilesystemDriver(root, RegistryPaths.LockOf);
        });
        // Before every other hosted service: a store that cannot be reached stops the registry with the reason.
        services.AddHostedService<StorageStartupCheck>();
        services.AddSingleton<BlobTouches>();
        services.AddSingleton<BlobStore>();
        services.AddSingleton<UploadHashStates>();
        services.AddSingleton<UploadStore>();
        services.AddSingleton<CrashDebris>();
        services.AddHostedService<StorageJanitor>();
        services.AddSingleton<OverlayRepositories>();
        services.AddSingleton<BlobLinks>();
        services.AddSingleton<TagStore>();
        services.AddSingleton<ManifestRevisions>();
        services.AddSingleton<ReferrerIndex>();
        services.AddSingleton<RepositoryCatalog>();
        services.AddSingleton<ManifestService>();
    }

    private static void AddChanges(IServiceCollection services)
    {
        services.AddSingleton<ChangeStore>();
        services.AddSingleton<ChangeService>();
        services.AddSingleton<ChangeCredentials>();
        services.AddSingleton<IChangeCredentials>(provider => provider.GetRequiredService<ChangeCredentials>());
        services.AddHostedService<ChangeJanitor>();
    }

    /// <summary>Replication to configured destinations; without any, pushes report to nothing.</summary>
    private static void AddReplication(IServiceCollection services)
    {
        services.AddSingleton<ReplicationTransport>();
        services.AddSingleton<ReplicationService>();
        services.AddSingleton<IReplicationQueue>(provider => provider.GetRequiredService<IOptions<ReplicationOptions>>().Value.IsEnabled
            ? provider.GetRequiredService<ReplicationService>()
            : NoReplication.Instance);
        services.AddHostedService(provider => provider.GetRequiredService<ReplicationService>());
    }

    private static void AddUpstream(IServiceCollection services)
    {
        services.AddSingleton<RepositoryResolver>();
        services.AddSingleton<UpstreamResilience>();
        services.AddSingleton<UpstreamHealth>();
        services.AddTransient<UpstreamHealthHandler>();
        services.AddSingleton<UpstreamTokenProvider>();
        services.AddSingleton<UpstreamManifestCache>();
        services.AddSingleton<UpstreamClient>();
        services.AddSingleton<UpstreamManifests>();
        services.AddSingleton<UpstreamReferences>();
        services.AddSingleton<UpstreamBlobFetcher>();
        services.AddSingleton<UpstreamBlobForwarder>();
        services.AddTransient<UpstreamAuthHandler>();
        services.AddHttpForwarder();

        // Registry calls: retries, then the upstream's health check (fail fast while its circuit is open), then the
        // attempt timeout, then auth, so a retried attempt is re-authenticated. Redirects are followed by the socket
        // handler, which drops the Authorization header when it does.
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
            .AddResilience()
            .AddHttpMessageHandler<UpstreamAuthHandler>();
        services.AddHttpClient(UpstreamTokenProvider.TokenClient, client => client.Timeout = TimeSpan.FromSeconds(30))
            .AddResilience();
    }

    private static IHttpClientBuilder AddResilience(this IHttpClientBuilder client) => client
        .AddPolicyHandler((provider, request) => provider.GetRequiredService<UpstreamResilience>().RetryFor(request))
        .AddHttpMessageHandler<UpstreamHealthHandler>()
        .AddPolicyHandler((provider, request) => provider.GetRequiredService<UpstreamResilience>().TimeoutFor(request));

    private static void AddApi(IServiceCollection services)
    {
        services.AddSingleton<ShadowingServices>();
        services.AddSingleton<RepositoryFactory>();
        services.AddSingleton<BaseEndpoints>();
        services.AddSingleton<BlobEndpoints>();
        services.AddSingleton<UploadEndpoints>();
        services.AddSingleton<ManifestEndpoints>();
        services.AddSingleton<TagEndpoints>();
        services.AddSingleton<ReferrerEndpoints>();
        services.AddSingleton<TargetResolver>();
        services.AddSingleton<ChangeEndpoints>();
        services.AddSingleton<RegistryRoutes>();
    }
}
