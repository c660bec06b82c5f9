using Serilog;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using ShadowRegistry.Api;

namespace ShadowRegistry.Hosting;

/// <summary>
/// Logging as an operator wants it: one line per request, the registry's own events, and nothing of the framework's
/// chatter (HttpClient's four lines per upstream call, the hosting lifetime's content-root line) below Warning.
/// <c>Registry:LogFormat</c> (<c>--log-format</c>) is <c>text</c> (default) or <c>json</c>: compact JSON, one event
/// per line, for log shippers.
/// </summary>
public static class RegistryLogging
{
    public const string FormatKey = "Registry:LogFormat";

    private const string TextTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {Properties:j}{NewLine}{Exception}";

    public static ITextFormatter Formatter(string? format) => format?.Trim().ToLowerInvariant() switch
    {
        null or "" or "text" => new MessageTemplateTextFormatter(TextTemplate),
        "json" => new CompactJsonFormatter(),
        _ => throw new InvalidOperationException($"{FormatKey} must be 'text' or 'json', not '{format}'"),
    };

    public const string LevelSection = "Serilog:MinimumLevel";

    /// <summary>
    /// The level is <c>Serilog:MinimumLevel</c> (or its <c>Default</c>), with <c>Serilog:MinimumLevel:Override:&lt;source&gt;</c>
    /// per source; configured overrides win over the built-in ones. They are read here rather than by
    /// Serilog.Settings.Configuration, whose search for sink assemblies loaded a dozen assemblies at every start-up for a
    /// console sink that is fixed anyway.
    /// </summary>
    public static LoggerConfiguration Configure(LoggerConfiguration logger, IConfiguration configuration)
    {
        var levels = configuration.GetSection(LevelSection);
        logger.MinimumLevel.Is(Level(levels.Value ?? levels["Default"], $"{LevelSection}:Default") ?? LogEventLevel.Information)
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Warning)
            .MinimumLevel.Override("System.Net.Http.HttpClient", LogEventLevel.Warning);
        foreach (var source in levels.GetSection("Override").GetChildren())
        {
            if (Level(source.Value, source.Path) is { } level) logger.MinimumLevel.Override(source.Key, level);
        }
        return logger.Enrich.FromLogContext().WriteTo.Console(Formatter(configuration[FormatKey]));
    }

    private static LogEventLevel? Level(string? value, string key) =>
        string.IsNullOrWhiteSpace(value) ? null
        : Enum.TryParse<LogEventLevel>(value.Trim(), ignoreCase: true, out var level) && Enum.IsDefined(level) ? level
        : throw new InvalidOperationException($"{key} must be one of {string.Join(", ", Enum.GetNames<LogEventLevel>())}, not '{value}'");

    /// <summary>The one line per request: method, the route's template, status, sizes, time, client, and what the endpoints set (repository, digest, ...).</summary>
    public static void ConfigureRequestLogging(Serilog.AspNetCore.RequestLoggingOptions options)
    {
        options.MessageTemplate = "{RequestMethod} {RouteTemplate} responded {StatusCode} in {Elapsed:0.0} ms";
        // A container's HEALTHCHECK or an orchestrator probes every few seconds: a healthy answer to a probe is not
        // worth a line at the default level. Failures, and probes that fail, stay visible.
        options.GetLevel = (context, _, exception) =>
            exception is not null || context.Response.StatusCode >= 500 ? LogEventLevel.Error
            : context.Request.Path.Value is "/healthz" or "/readyz" ? LogEventLevel.Debug
            : LogEventLevel.Information;
        options.EnrichDiagnosticContext = (diagnostics, context) =>
        {
            diagnostics.Set("RouteTemplate", Template(context));
            diagnostics.Set("Client", context.Connection.RemoteIpAddress?.ToString());
            if (context.Request.ContentLength is { } received) diagnostics.Set("RequestBytes", received);
            if (context.Response.ContentLength is { } sent) diagnostics.Set("ResponseBytes", sent);
        };
    }

    private static string Template(HttpContext context) => RouteMatch.Of(context)?.Template ?? context.Request.Path.Value ?? "";
}
