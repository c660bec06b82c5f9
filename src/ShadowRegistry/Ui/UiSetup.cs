using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Ui;

/// <summary>
/// Wires the operator page. Registration is all that happens at start-up (service descriptors, one endpoint, a
/// sampling timer); the pages, their services and the data protection keys are made by the first request for them.
/// </summary>
public static class UiSetup
{
    public static WebApplicationBuilder AddRegistryUi(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<UiOptions>()
            .Bind(builder.Configuration.GetSection(UiOptions.Section))
            .Validate(o => UiOptions.IsValidPath(o.Path), "Ui:Path must be an absolute path like /ui (letters, digits, '-', '_', '.', no trailing '/'; not under /v2 or /api)")
            .Validate(o => o.SessionLifetime > TimeSpan.Zero && o.PageSize is > 0 and <= 1000 && o.StorageUsageRefresh > TimeSpan.Zero,
                "Ui:SessionLifetime and StorageUsageRefresh must be positive, Ui:PageSize between 1 and 1000")
            .ValidateOnStart();
        if (!builder.Configuration.GetValue(UiOptions.Section + ":" + nameof(UiOptions.Enabled), true)) return builder;

        // Keys for the session cookie and the antiforgery tokens, kept in memory: made on first use, never written
        // anywhere. A restart logs operators out; behind a load balancer the page needs sticky sessions.
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        services.AddAntiforgery(options =>
        {
            options.Cookie.Name = "ShadowRegistry.Ui.Antiforgery";
            options.Cookie.HttpOnly = true;
            options.Cookie.SameSite = SameSiteMode.Strict;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.FormFieldName = "_csrf";
            options.HeaderName = null;
        });
        // Data protection (added again by antiforgery) would load the default key ring at start-up, writing a key under
        // ~/.aspnet; the page uses the in-memory keys above, and only when someone uses it.
        foreach (var eager in services.Where(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType?.Name == "DataProtectionHostedService").ToList())
            services.Remove(eager);
        services.AddSingleton<UiSession>();
        services.AddSingleton<UiData>();
        services.AddSingleton<StorageUsage>();
        services.AddSingleton<UiPages>();
        services.AddSingleton<MetricsHistory>();
        services.AddHostedService(provider => provider.GetRequiredService<MetricsHistory>());
        return builder;
    }

    /// <summary>One endpoint for the whole page, dispatched by <see cref="UiPages"/>, which is made on its first request.</summary>
    public static void MapRegistryUi(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<UiOptions>>().Value;
        if (!options.Enabled) return;
        UiPages? pages = null;
        RequestDelegate handle = context => (pages ??= context.RequestServices.GetRequiredService<UiPages>()).HandleAsync(context);
        app.Map(options.Path, handle);
        app.Map(options.Path + "/{**rest}", handle);
    }
}
