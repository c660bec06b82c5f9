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

    public static LoggerConfiguration Configure(LoggerConfiguration logger, IConfiguration configuration) => logger
        .ReadFrom.Configuration(configuration)
        .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
        .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Warning)
        .MinimumLevel.Override("System.Net.Http.HttpClient", LogEventLevel.Warning)
        .Enrich.FromLogContext()
        .WriteTo.Console(Formatter(configuration[FormatKey]));

    /// <summary>The one line per request: method, the route's template, status, sizes, time, client, and what the endpoints set (repository, digest, ...).</summary>
    public static void ConfigureRequestLogging(Serilog.AspNetCore.RequestLoggingOptions options)
    {
        options.MessageTemplate = "{RequestMethod} {RouteTemplate} responded {StatusCode} in {Elapsed:0.0} ms";
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
