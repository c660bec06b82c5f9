using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ShadowRegistry.Hosting;

/// <summary>
/// <c>/healthz</c>: the process is alive (runs no check). <c>/readyz</c>: it can serve (storage probe). Both answer
/// <c>Healthy</c>/<c>Unhealthy</c> as text (200/503), or a JSON detail of each check when the client accepts JSON.
/// They sit outside /v2, so registry authentication never applies to them.
/// </summary>
public static class HealthEndpoints
{
    public const string ReadyTag = "ready";

    public static void Map(WebApplication app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync });
        app.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync });
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.Headers.CacheControl = "no-store";
        if (!context.Request.Headers.Accept.ToString().Contains("application/json", StringComparison.OrdinalIgnoreCase))
        {
            context.Response.ContentType = "text/plain; charset=utf-8";
            return context.Response.WriteAsync(report.Status.ToString());
        }
        context.Response.ContentType = "application/json; charset=utf-8";
        var detail = new HealthDetail(
            report.Status.ToString(),
            Math.Round(report.TotalDuration.TotalMilliseconds, 1),
            [.. report.Entries.Select(entry => new CheckDetail(
                entry.Key, entry.Value.Status.ToString(), entry.Value.Description, Math.Round(entry.Value.Duration.TotalMilliseconds, 1)))]);
        return context.Response.WriteAsync(JsonSerializer.Serialize(detail, HealthJson.Default.HealthDetail));
    }

    internal sealed record HealthDetail(string Status, double DurationMs, List<CheckDetail> Checks);

    internal sealed record CheckDetail(string Name, string Status, string? Description, double DurationMs);
}

/// <summary>The health detail, by generated code rather than reflection (the Native AOT build has none).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(HealthEndpoints.HealthDetail))]
internal sealed partial class HealthJson : JsonSerializerContext;
