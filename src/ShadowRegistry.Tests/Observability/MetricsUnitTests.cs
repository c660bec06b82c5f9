using Microsoft.AspNetCore.Http;
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
