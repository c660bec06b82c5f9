using Microsoft.AspNetCore.Http;
using Prometheus;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Tests.Observability;

public sealed class MetricsUnitTests
{
    [Theory]
    [InlineData("/v2", "/v2/")]
    [InlineData("/v2/", "/v2/")]
    [InlineData("/v2/_catalog", "/v2/_catalog")]
    [InlineData("/v2/team/app/tags/list", "/v2/{name}/tags/list")]
    [InlineData("/v2/docker.io/library/alpine/manifests/3.20", "/v2/{name}/manifests/{reference}")]
    [InlineData("/v2/a/b/c/blobs/sha256:0000", "/v2/{name}/blobs/{digest}")]
    [InlineData("/v2/a/blobs/uploads/", "/v2/{name}/blobs/uploads/")]
    [InlineData("/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef", "/v2/{name}/blobs/uploads/{id}")]
    [InlineData("/v2/a/referrers/sha256:0000", "/v2/{name}/referrers/{digest}")]
    [InlineData("/healthz", "/healthz")]
    [InlineData("/readyz", "/readyz")]
    [InlineData("/metrics", "/metrics")]
    [InlineData("/auth/token", "/auth/token")]
    [InlineData("/v2/team/app", "other")]
    [InlineData("/v2/team/app/manifests/", "other")]
    [InlineData("/secret/team/app", "other")]
    [InlineData("/", "other")]
    public void RouteLabelsAreTemplatesNeverPaths(string path, string expected)
    {
        var context = new DefaultHttpContext();
        context.Request.Path = path;
        Assert.Equal(expected, HttpMetricsMiddleware.RouteLabel(context));
    }

    [Fact]
    public async Task NamesFollowThePrometheusConventions()
    {
        var text = await ScrapeTextAsync(new RegistryMetrics());
        var types = text.Split('\n').Where(line => line.StartsWith("# TYPE ", StringComparison.Ordinal))
            .Select(line => line.Split(' ')).ToDictionary(parts => parts[2], parts => parts[3]);
        Assert.True(types.Count >= 17, string.Join(", ", types.Keys));
        foreach (var (name, type) in types)
        {
            Assert.Matches("^shadowregistry_[a-z]+(_[a-z]+)*$", name);
            switch (type)
            {
                case "counter":
                    Assert.EndsWith("_total", name);
                    break;
                case "histogram":
                    Assert.True(name.EndsWith("_seconds", StringComparison.Ordinal) || name.EndsWith("_bytes", StringComparison.Ordinal), name);
                    break;
                default:
                    Assert.Equal("gauge", type);
                    Assert.False(name.EndsWith("_total", StringComparison.Ordinal), name);
                    break;
            }
        }
    }

    private static async Task<string> ScrapeTextAsync(RegistryMetrics metrics)
    {
        using var stream = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    [Fact]
    public async Task EveryCallThatJoinsAFlightInProgressIsReported()
    {
        var joined = 0;
        var flight = new SingleFlight<string, int>(() => Interlocked.Increment(ref joined));
        var release = new TaskCompletionSource<int>();
        var waiters = Enumerable.Range(0, 5).Select(_ => flight.RunAsync("k", () => release.Task, CancellationToken.None)).ToArray();
        var other = flight.RunAsync("other", () => Task.FromResult(7), CancellationToken.None);
        Assert.Equal(4, joined);
        release.SetResult(1);
        Assert.All(await Task.WhenAll(waiters), value => Assert.Equal(1, value));
        Assert.Equal(7, await other);
        // Done flights are forgotten: the next call starts its own.
        Assert.Equal(2, await flight.RunAsync("k", () => Task.FromResult(2), CancellationToken.None));
        Assert.Equal(4, joined);
    }
}
