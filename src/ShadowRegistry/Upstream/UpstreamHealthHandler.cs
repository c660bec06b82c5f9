using System.Net;
using Polly.CircuitBreaker;
using Polly.Timeout;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Fails fast while an upstream's circuit is open and tells <see cref="UpstreamHealth"/> what each attempt showed.
/// It sits between Polly's retry (outside) and the per-attempt timeout (inside), so each attempt counts once, a
/// timeout arrives as <see cref="TimeoutRejectedException"/>, and the token it sees is the caller's own. For the
/// same reasons it is where upstream attempts are counted and timed (to their response headers).
/// </summary>
public sealed class UpstreamHealthHandler(UpstreamHealth health, RegistryMetrics metrics, TimeProvider time) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var host = health.For(request);
        var repository = UpstreamHealth.RepositoryOf(request);
        var upstream = UpstreamHealth.MetricsLabel(request);
        var started = time.GetTimestamp();
        bool probe;
        try
        {
            probe = host.Enter();
        }
        catch (BrokenCircuitException)
        {
            metrics.UpstreamRequest(upstream, "rejected", null, time.GetElapsedTime(started));
            throw;
        }
        HttpResponseMessage response;
        try
        {
            response = await base.SendAsync(request, cancellationToken);
        }
        catch (Exception e)
        {
            var outcome = Classify(e, cancellationToken);
            host.Record(outcome, repository, probe);
            metrics.UpstreamRequest(upstream, Label(outcome), null, time.GetElapsedTime(started));
            throw;
        }
        var answered = Classify(response.StatusCode);
        host.Record(answered, repository, probe);
        metrics.UpstreamRequest(upstream, Label(answered), (int)response.StatusCode, time.GetElapsedTime(started));
        return response;
    }

    private static string Label(AttemptOutcome outcome) => outcome switch
    {
        AttemptOutcome.Answered => "answered",
        AttemptOutcome.Unreachable => "unreachable",
        AttemptOutcome.Failed => "failed",
        _ => "ignored",
    };

    public static AttemptOutcome Classify(HttpStatusCode status) =>
        (int)status >= 500 || status == HttpStatusCode.RequestTimeout ? AttemptOutcome.Failed : AttemptOutcome.Answered;

    public static AttemptOutcome Classify(Exception e, CancellationToken callerToken) => e switch
    {
        // Our client went away: nothing wrong with the upstream.
        _ when callerToken.IsCancellationRequested => AttemptOutcome.Ignored,
        // Another host's open circuit (a token realm's, reached from the auth handler) is not this host's failure.
        BrokenCircuitException => AttemptOutcome.Ignored,
        TimeoutRejectedException => AttemptOutcome.Failed,
        HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError
            or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError } => AttemptOutcome.Unreachable,
        // SocketsHttpHandler's ConnectTimeout: no connection could be made.
        OperationCanceledException { InnerException: TimeoutException } => AttemptOutcome.Unreachable,
        // A dropped or garbled response: the connection worked, this request did not.
        HttpRequestException or IOException or OperationCanceledException => AttemptOutcome.Failed,
        _ => AttemptOutcome.Ignored,
    };
}
