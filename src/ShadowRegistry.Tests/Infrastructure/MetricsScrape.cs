using System.Globalization;
using System.Net;
using System.Text;
using Prometheus;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>One sample line of the Prometheus text format: name, labels, value.</summary>
public sealed record MetricSeries(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>A parsed <c>/metrics</c> answer, to compare counters before and after what a test does.</summary>
public sealed class MetricsScrape(IReadOnlyList<MetricSeries> series)
{
    public IReadOnlyList<MetricSeries> Series => series;

    /// <summary>GET <paramref name="path"/>; asserts 200 and the Prometheus text content type.</summary>
    public static async Task<MetricsScrape> GetAsync(HttpClient client, string path = "metrics")
    {
        using var response = await client.GetAsync(path);
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        return Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>What a registry's metrics say right now, without HTTP (for tests of single services).</summary>
    public static async Task<MetricsScrape> Of(RegistryMetrics metrics)
    {
        using var stream = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(stream);
        return Parse(Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>The sum of the samples named <paramref name="name"/> whose labels include all of <paramref name="labels"/> (0 when none).</summary>
    public double Value(string name, params (string Name, string Value)[] labels) =>
        series.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value)).Sum(s => s.Value);

    public bool Has(string name, params (string Name, string Value)[] labels) =>
        series.Any(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value));

    /// <summary>How much a sum moved from <paramref name="before"/> to this scrape.</summary>
    public double Delta(MetricsScrape before, string name, params (string Name, string Value)[] labels) =>
        Value(name, labels) - before.Value(name, labels);

    public static MetricsScrape Parse(string text)
    {
        var result = new List<MetricSeries>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            var i = 0;
            while (i < line.Length && line[i] != '{' && line[i] != ' ') i++;
            var name = line[..i];
            if (i < line.Length && line[i] == '{')
            {
                i++;
                while (line[i] != '}')
                {
                    var equals = line.IndexOf('=', i);
                    var key = line[i..equals];
                    var value = new StringBuilder();
                    var j = equals + 2; // past ="
                    for (; line[j] != '"'; j++)
                    {
                        if (line[j] == '\\')
                        {
                            j++;
                            value.Append(line[j] == 'n' ? '\n' : line[j]);
                            continue;
                        }
                        value.Append(line[j]);
                    }
                    labels[key] = value.ToString();
                    i = j + 1;
                    if (line[i] == ',') i++;
                }
                i++;
            }
            var fields = line[i..].Trim().Split(' ');
            result.Add(new MetricSeries(name, labels, double.Parse(fields[0], CultureInfo.InvariantCulture)));
        }
        return new MetricsScrape(result);
    }
}
