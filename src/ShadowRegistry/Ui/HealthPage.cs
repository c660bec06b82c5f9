using System.Globalization;
using System.Text;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Ui;

public sealed partial class UiPages
{
    /// <summary>Storage used, upstreams (breaker, latency, failures), cache hit ratio, request and error rates over the last hour.</summary>
    private async Task HealthAsync(HttpContext context, Viewer viewer)
    {
        var samples = history.Samples();
        var now = samples[^1];
        var first = samples[0];
        var (report, measuring) = usage.Current();
        await PageAsync(context, 200, "Health", viewer, h =>
        {
            h.Add($"<h2>Storage</h2>\n");
            if (report is null) h.Add($"<p class=\"hint\" role=\"status\">Measuring the storage; reload in a moment.</p>\n");
            else
            {
                h.Add($"""
                    <table class="usage"><caption>Storage used, measured {Time(report.MeasuredAt)} in {Span(report.Took)}{(measuring ? " (measuring again)" : "")}</caption>
                    <thead><tr><th scope="col">Referenced by</th><th scope="col">Blobs</th><th scope="col">Bytes</th></tr></thead><tbody>
                    """);
                foreach (var (label, figure) in new[] { ("Base repositories", report.Base), ("Live changes", report.Changes), ("Pull-through cache", report.Cache),
                             ("Nothing (garbage)", report.Unreferenced), ("All blobs", report.All) })
                    h.Add($"<tr><th scope=\"row\">{label}</th><td>{figure.Blobs}</td><td>{Bytes(figure.Bytes)}</td></tr>\n");
                h.Add($"</tbody></table>\n<p class=\"hint\">A blob shared by the base and a change counts in both.</p>\n");
            }

            h.Add($"<h2>Upstreams</h2>\n");
            var upstreams = shadowOptions.Value.Upstreams;
            if (upstreams.Count == 0) h.Add($"<p class=\"empty\">No upstream is configured: the registry is purely local.</p>\n");
            else
            {
                h.Add($"""
                    <table class="upstreams"><caption>Upstreams, last hour</caption>
                    <thead><tr><th scope="col">Upstream</th><th scope="col">URL</th><th scope="col">Breaker</th><th scope="col">Attempts</th><th scope="col">Failed</th><th scope="col">Mean latency</th></tr></thead><tbody>
                    """);
                foreach (var (name, upstream) in upstreams.OrderBy(u => u.Key, StringComparer.Ordinal))
                {
                    var current = now.Upstreams.GetValueOrDefault(name) ?? new UpstreamFigures(0, 0, 0, 0, false);
                    var before = first == now ? new UpstreamFigures(0, 0, 0, 0, false) : first.Upstreams.GetValueOrDefault(name) ?? new UpstreamFigures(0, 0, 0, 0, false);
                    var timed = current.Timed - before.Timed;
                    var latency = timed > 0 ? TimeSpan.FromSeconds((current.DurationSeconds - before.DurationSeconds) / timed) : (TimeSpan?)null;
                    h.Add($"""
                        <tr class="upstream" data-upstream="{name}"><th scope="row">{name}{(upstream.Default ? " (default)" : "")}</th><td>{upstream.Url}</td>
                        <td class="{(current.CircuitOpen ? "bad" : "good")}">{(current.CircuitOpen ? "open: failing fast" : "closed")}</td>
                        <td>{current.Requests - before.Requests}</td><td>{current.Failures - before.Failures}</td>
                        <td>{(latency is { } l ? string.Create(CultureInfo.InvariantCulture, $"{l.TotalMilliseconds:0.#} ms") : "no attempts")}</td></tr>
                        """);
                }
                h.Add($"</tbody></table>\n");
            }
            var hits = now.CacheHits - (first == now ? 0 : first.CacheHits);
            var misses = now.CacheMisses - (first == now ? 0 : first.CacheMisses);
            var ratio = hits + misses > 0 ? string.Create(CultureInfo.InvariantCulture, $"{100.0 * hits / (hits + misses):0.#}%") : "no shadowed reads";
            h.Add($"<p class=\"ratio\">Cache hit ratio, last hour: <strong>{ratio}</strong> ({hits} hits, {misses} misses; all time {now.CacheHits} and {now.CacheMisses}).</p>\n");

            h.Add($"<h2>Requests</h2>\n");
            var window = first == now ? "since start-up" : $"over the last {Span(now.At - first.At)}";
            h.Add($"<p>{now.Requests - (first == now ? 0 : first.Requests)} requests {window}, {now.ServerErrors - (first == now ? 0 : first.ServerErrors)} answered 5xx and {now.ClientErrors - (first == now ? 0 : first.ClientErrors)} 4xx.</p>\n");
            h.Add(Chart("requests", "Requests per minute, last hour", samples, s => s.Requests));
            h.Add(Chart("errors", "Server errors (5xx) per minute, last hour", samples, s => s.ServerErrors));
        }, "Health");
    }

    /// <summary>A rate over the last hour as an inline SVG line (no script, no style: the CSP allows neither inline).</summary>
    private static Markup Chart(string id, string title, IReadOnlyList<MetricsSnapshot> samples, Func<MetricsSnapshot, long> figure)
    {
        const int width = 600, height = 120, top = 10, bottom = 20;
        var end = samples[^1].At;
        var start = end - MetricsHistory.Span;
        var points = new List<(double X, double Rate)>();
        for (var i = 1; i < samples.Count; i++)
        {
            var minutes = (samples[i].At - samples[i - 1].At).TotalMinutes;
            if (minutes <= 0) continue;
            var rate = Math.Max(0, figure(samples[i]) - figure(samples[i - 1])) / minutes;
            points.Add(((samples[i].At - start) / MetricsHistory.Span * width, rate));
        }
        var max = Math.Max(1, points.Count == 0 ? 0 : points.Max(p => p.Rate));
        var line = new StringBuilder();
        foreach (var (x, rate) in points)
            line.Append(CultureInfo.InvariantCulture, $"{x:0.#},{top + (height - top - bottom) * (1 - rate / max):0.#} ");
        var latest = points.Count == 0 ? "no samples yet" : string.Create(CultureInfo.InvariantCulture, $"latest {points[^1].Rate:0.#}/min, peak {max:0.#}/min");
        return Html.Fragment(h => h.Add($"""
            <figure class="chart" id="chart-{id}">
            <svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="chart-{id}-title">
            <title id="chart-{id}-title">{title}: {latest}</title>
            <line x1="0" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#767676" stroke-width="1"/>
            <polyline points="{line.ToString().TrimEnd()}" fill="none" stroke="#0b5cad" stroke-width="2"/>
            <text x="0" y="{height - 4}" font-size="11" fill="#333333">-60 min</text>
            <text x="{width}" y="{height - 4}" font-size="11" fill="#333333" text-anchor="end">now</text>
            <text x="0" y="{top + 2}" font-size="11" fill="#333333">{string.Create(CultureInfo.InvariantCulture, $"{max:0.#}/min")}</text>
            </svg>
            <figcaption>{title}: {latest}.</figcaption>
            </figure>
            """));
    }
}
