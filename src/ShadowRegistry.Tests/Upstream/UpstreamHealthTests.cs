using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Polly.CircuitBreaker;
using Polly.Timeout;
using ShadowRegistry.Observability;
using ShadowRegistry.Tests.Infrastructure;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Tests.Upstream;

/// <summary>The breaker's rule, through <see cref="UpstreamHealthHandler"/> with a scripted inner handler and a fake clock.</summary>
public sealed class UpstreamHealthTests
{
    private static readonly UpstreamRegistry Registry = new("up.test", new Uri("http://up.test"), null, null, true, false);

    private readonly FakeTimeProvider clock = new();
    private readonly RegistryMetrics metrics = new();
    private readonly ScriptedHandler upstream = new();
    private readonly HttpMessageInvoker invoker;
    private readonly HostHealth host;

    public UpstreamHealthTests()
    {
        var settings = new ShadowOptions { BreakAfterFailures = 3, BreakAfterRepositories = 2, BreakDuration = TimeSpan.FromMinutes(1) };
        var health = new UpstreamHealth(Options.Create(settings), clock, metrics, NullLogger<UpstreamHealth>.Instance);
        invoker = new HttpMessageInvoker(new UpstreamHealthHandler(health, metrics, clock) { InnerHandler = upstream });
        host = health.For(Request("any/repo"));
    }

    private static HttpRequestMessage Request(string repository)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"http://up.test/v2/{repository}/manifests/v1");
        UpstreamRequestOptions.Tag(request, new UpstreamRepository(Registry, repository));
        return request;
    }

    /// <summary>Sends one attempt for the repository; the exception the upstream was told to throw, if any, is swallowed.</summary>
    private async Task SendAsync(string repository, Func<HttpResponseMessage> answer, CancellationToken cancellationToken = default)
    {
        upstream.Next = answer;
        upstream.Thrown = null;
        using var request = Request(repository);
        try
        {
            using var response = await invoker.SendAsync(request, cancellationToken);
        }
        catch (Exception e) when (e == upstream.Thrown)
        {
            // The upstream's own failure, passed on to the caller. Anything else (an open circuit, the handler's own
            // failure) reaches the test: swallowed, it would pass every "the circuit stays closed" check.
        }
    }

    private static Func<HttpResponseMessage> Status(HttpStatusCode status) => () => new HttpResponseMessage(status);

    private static Func<HttpResponseMessage> Throw(Exception e) => () => throw e;

    private static readonly Func<HttpResponseMessage> Refused = Throw(new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused"));

    [Fact]
    public async Task FailuresOfOneRepositoryNeverOpenTheCircuit()
    {
        // 3 of each kind the repository itself may cause, 12 in a row against a threshold of 3.
        for (var i = 0; i < 3; i++)
        {
            await SendAsync("broken/app", Status(HttpStatusCode.InternalServerError));
            await SendAsync("broken/app", Throw(new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely")));
            await SendAsync("broken/app", Throw(new TimeoutRejectedException()));
            await SendAsync("broken/app", Status(HttpStatusCode.NotFound));
        }
        Assert.False(host.IsOpen);
    }

    [Fact]
    public async Task FailuresFromEnoughRepositoriesOpenTheCircuitAndItFailsFast()
    {
        await SendAsync("broken/app", Status(HttpStatusCode.InternalServerError));
        await SendAsync("broken/app", Status(HttpStatusCode.InternalServerError));
        Assert.False(host.IsOpen);
        // A second repository (BreakAfterRepositories) makes all 3 failures the host's.
        await SendAsync("other/app", Throw(new TimeoutRejectedException()));
        Assert.True(host.IsOpen);

        var calls = upstream.Calls;
        await Assert.ThrowsAsync<BrokenCircuitException>(() => SendAsync("third/app", Status(HttpStatusCode.OK)));
        Assert.Equal(calls, upstream.Calls);
    }

    [Fact]
    public async Task ConnectionFailuresAreTheHostsEvenFromOneRepository()
    {
        for (var i = 0; i < 3; i++)
        {
            Assert.False(host.IsOpen);
            await SendAsync("team/app", Refused);
        }
        Assert.True(host.IsOpen);
    }

    [Fact]
    public async Task AnyAnswerInBetweenStartsTheCountAgain()
    {
        await SendAsync("team/app", Refused);
        await SendAsync("other/app", Status(HttpStatusCode.BadGateway));
        // A 404 is an answer: the host is up.
        await SendAsync("missing/app", Status(HttpStatusCode.NotFound));
        await SendAsync("team/app", Refused);
        await SendAsync("other/app", Status(HttpStatusCode.BadGateway));
        Assert.False(host.IsOpen);
    }

    [Fact]
    public async Task FailuresOlderThanBreakDurationAreForgotten()
    {
        await SendAsync("team/app", Refused);
        await SendAsync("team/app", Refused);
        clock.Advance(TimeSpan.FromMinutes(1));
        await SendAsync("team/app", Refused);
        Assert.False(host.IsOpen);
        await SendAsync("team/app", Refused);
        await SendAsync("team/app", Refused);
        Assert.True(host.IsOpen);
    }

    [Fact]
    public async Task CallerCancellationIsNeverAHostFailure()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        for (var i = 0; i < 5; i++)
            await SendAsync("team/app", Throw(new TaskCanceledException("client went away", null, cancelled.Token)), cancelled.Token);
        Assert.False(host.IsOpen);
        Assert.Equal(5, upstream.Calls);
    }

    [Fact]
    public async Task AfterBreakDurationOneProbeDecides()
    {
        for (var i = 0; i < 3; i++) await SendAsync("team/app", Refused);
        clock.Advance(TimeSpan.FromMinutes(1));

        // The probe fails: open for another BreakDuration.
        await SendAsync("team/app", Refused);
        Assert.True(host.IsOpen);
        var calls = upstream.Calls;
        await Assert.ThrowsAsync<BrokenCircuitException>(() => SendAsync("team/app", Status(HttpStatusCode.OK)));
        Assert.Equal(calls, upstream.Calls);

        // The next probe is answered: closed.
        clock.Advance(TimeSpan.FromMinutes(1));
        await SendAsync("other/app", Status(HttpStatusCode.OK));
        Assert.False(host.IsOpen);
        await SendAsync("team/app", Status(HttpStatusCode.OK));
        Assert.Equal(calls + 2, upstream.Calls);
    }

    [Fact]
    public async Task WhileAProbeIsInFlightOtherRequestsFailFast()
    {
        for (var i = 0; i < 3; i++) await SendAsync("team/app", Refused);
        clock.Advance(TimeSpan.FromMinutes(1));

        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Next = () =>
        {
            entered.SetResult();
            release.Task.Wait(TimeSpan.FromSeconds(30));
            return new HttpResponseMessage(HttpStatusCode.OK);
        };
        using var probeRequest = Request("team/app");
        var probe = Task.Run(() => invoker.SendAsync(probeRequest, CancellationToken.None));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Assert.ThrowsAsync<BrokenCircuitException>(() => SendAsync("other/app", Status(HttpStatusCode.OK)));
        release.SetResult();
        using (await probe) { }
        Assert.False(host.IsOpen);
    }

    [Fact]
    public async Task MetricsCountEachAttemptByOutcomeAndFollowTheCircuit()
    {
        await SendAsync("team/app", Status(HttpStatusCode.NotFound));
        await SendAsync("team/app", Status(HttpStatusCode.BadGateway));
        for (var i = 0; i < 3; i++) await SendAsync("team/app", Refused);
        Assert.True(host.IsOpen);
        await Assert.ThrowsAsync<BrokenCircuitException>(() => SendAsync("team/app", Status(HttpStatusCode.OK)));
        var open = await MetricsScrape.Of(metrics);
        Assert.Equal(1, open.Value("shadowregistry_upstream_requests_total", ("upstream", "up.test"), ("outcome", "answered"), ("status", "404")));
        Assert.Equal(1, open.Value("shadowregistry_upstream_requests_total", ("upstream", "up.test"), ("outcome", "failed"), ("status", "502")));
        Assert.Equal(3, open.Value("shadowregistry_upstream_requests_total", ("upstream", "up.test"), ("outcome", "unreachable"), ("status", "none")));
        Assert.Equal(1, open.Value("shadowregistry_upstream_requests_total", ("upstream", "up.test"), ("outcome", "rejected"), ("status", "none")));
        Assert.Equal(6, open.Value("shadowregistry_upstream_request_duration_seconds_count", ("upstream", "up.test")));
        Assert.Equal(1, open.Value("shadowregistry_upstream_circuit_open", ("upstream", "up.test")));

        // The probe after the break is answered: closed again.
        clock.Advance(TimeSpan.FromMinutes(1));
        await SendAsync("team/app", Status(HttpStatusCode.OK));
        var closed = await MetricsScrape.Of(metrics);
        Assert.Equal(0, closed.Value("shadowregistry_upstream_circuit_open", ("upstream", "up.test")));
        Assert.Equal(1, closed.Value("shadowregistry_upstream_requests_total", ("upstream", "up.test"), ("outcome", "answered"), ("status", "200")));
    }

    [Theory]
    [InlineData("http://up.test/v2/team/app/manifests/v1", null, "team/app")]
    [InlineData("http://up.test/v2/a/blobs/b/blobs/sha256:00", null, "a/blobs/b")]
    [InlineData("http://auth.test/token?service=up.test&scope=repository%3Ateam%2Fapp%3Apull", null, "team/app")]
    [InlineData("http://up.test/v2/x/manifests/v1", "repository:tagged/app:pull", "tagged/app")]
    public void RepositoryComesFromTheScopeOrThePath(string uri, string? scope, string expected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (scope is not null) request.Options.Set(UpstreamRequestOptions.Scope, scope);
        Assert.Equal(expected, UpstreamHealth.RepositoryOf(request));
    }

    /// <summary>Stands for everything below the health handler (timeout, auth, sockets): answers or throws as told.</summary>
    private sealed class ScriptedHandler : HttpMessageHandler
    {
        private int calls;

        public Func<HttpResponseMessage> Next { get; set; } = () => new HttpResponseMessage(HttpStatusCode.OK);

        public int Calls => Volatile.Read(ref calls);

        /// <summary>What the last answer threw, if it did.</summary>
        public Exception? Thrown { get; set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref calls);
            try
            {
                return Task.FromResult(Next());
            }
            catch (Exception e)
            {
                Thrown = e;
                throw;
            }
        }
    }
}
