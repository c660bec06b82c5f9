using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Extensions.Http;
using Polly.Timeout;

namespace ShadowRegistry.Upstream;

/// <summary>
/// The Polly policies for upstream requests: jittered exponential retries of idempotent requests on 429, 5xx,
/// timeouts and connection failures, a per-attempt timeout, and one circuit breaker per upstream so a dead
/// upstream fails fast instead of holding every pull for the whole retry budget. Policies act before the
/// response headers arrive, so a retried blob GET has sent nothing to the client yet.
/// </summary>
public sealed class UpstreamResilience(IOptions<ShadowOptions> options, ILogger<UpstreamResilience> logger)
{
    private readonly ConcurrentDictionary<string, IAsyncPolicy<HttpResponseMessage>> byUpstream = new();

    public IAsyncPolicy<HttpResponseMessage> For(HttpRequestMessage request)
    {
        if (request.Method != HttpMethod.Get && request.Method != HttpMethod.Head) return Policy.NoOpAsync<HttpResponseMessage>();
        var key = request.Options.TryGetValue(UpstreamRequestOptions.Registry, out var upstream) ? upstream.Name : request.RequestUri?.Authority ?? "";
        return byUpstream.GetOrAdd(key, Create);
    }

    private IAsyncPolicy<HttpResponseMessage> Create(string upstream)
    {
        var settings = options.Value;
        var jitter = new Random();
        var retry = HttpPolicyExtensions.HandleTransientHttpError()
            .OrResult(r => r.StatusCode == HttpStatusCode.TooManyRequests)
            .Or<TimeoutRejectedException>()
            .WaitAndRetryAsync(settings.Retries,
                (attempt, outcome, _) => RetryDelay(settings, attempt, outcome.Result, jitter),
                (outcome, delay, attempt, _) =>
                {
                    logger.LogWarning("Upstream {Upstream} attempt {Attempt} failed ({Reason}); retrying in {Delay} ms",
                        upstream, attempt, outcome.Exception?.GetType().Name ?? ((int)outcome.Result.StatusCode).ToString(), (int)delay.TotalMilliseconds);
                    return Task.CompletedTask;
                });
        var breaker = HttpPolicyExtensions.HandleTransientHttpError()
            .Or<TimeoutRejectedException>()
            .CircuitBreakerAsync(settings.BreakAfterFailures, settings.BreakDuration,
                (outcome, duration) => logger.LogError("Upstream {Upstream} circuit opened for {Duration}", upstream, duration),
                () => logger.LogInformation("Upstream {Upstream} circuit closed", upstream));
        var timeout = Policy.TimeoutAsync<HttpResponseMessage>(settings.AttemptTimeout);
        return Policy.WrapAsync(retry, breaker, timeout);
    }

    /// <summary>Honours Retry-After on 429/503 (bounded), otherwise exponential back-off with full jitter.</summary>
    private static TimeSpan RetryDelay(ShadowOptions settings, int attempt, HttpResponseMessage? response, Random jitter)
    {
        if (response?.Headers.RetryAfter?.Delta is { } retryAfter && retryAfter <= TimeSpan.FromSeconds(10)) return retryAfter;
        var ceiling = settings.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, attempt - 1);
        lock (jitter) return TimeSpan.FromMilliseconds(ceiling / 2 + jitter.NextDouble() * ceiling / 2);
    }
}
