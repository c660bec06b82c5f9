using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Extensions.Http;
using Polly.Timeout;

namespace ShadowRegistry.Upstream;

/// <summary>
/// The Polly policies for upstream requests: jittered exponential retries of idempotent requests on 429, 5xx,
/// timeouts and connection failures, and a per-attempt timeout. Between the two sits
/// <see cref="UpstreamHealthHandler"/>, the circuit breaker per upstream, hand-rolled because Polly's cannot
/// tell which repository a failure came from. Policies act before the response headers arrive, so a retried
/// blob GET has sent nothing to the client yet.
/// </summary>
public sealed class UpstreamResilience(IOptions<ShadowOptions> options, ILogger<UpstreamResilience> logger)
{
    private readonly ConcurrentDictionary<string, IAsyncPolicy<HttpResponseMessage>> retryByUpstream = new();
    private readonly Lazy<IAsyncPolicy<HttpResponseMessage>> timeout = new(() => Policy.TimeoutAsync<HttpResponseMessage>(options.Value.AttemptTimeout));

    /// <summary>The outer policy: retries, wrapped around the health check and the timeout of each attempt.</summary>
    public IAsyncPolicy<HttpResponseMessage> RetryFor(HttpRequestMessage request)
    {
        if (!IsIdempotent(request)) return Policy.NoOpAsync<HttpResponseMessage>();
        var upstream = request.Options.TryGetValue(UpstreamRequestOptions.Registry, out var registry) ? registry.Name : request.RequestUri?.Authority ?? "";
        return retryByUpstream.GetOrAdd(upstream, CreateRetry);
    }

    /// <summary>The inner policy: the time one attempt may take to answer with headers.</summary>
    public IAsyncPolicy<HttpResponseMessage> TimeoutFor(HttpRequestMessage request) =>
        IsIdempotent(request) ? timeout.Value : Policy.NoOpAsync<HttpResponseMessage>();

    private static bool IsIdempotent(HttpRequestMessage request) => request.Method == HttpMethod.Get || request.Method == HttpMethod.Head;

    private IAsyncPolicy<HttpResponseMessage> CreateRetry(string upstream)
    {
        var settings = options.Value;
        var jitter = new Random();
        return HttpPolicyExtensions.HandleTransientHttpError()
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
    }

    /// <summary>Honours Retry-After on 429/503 (bounded), otherwise exponential back-off with full jitter.</summary>
    private static TimeSpan RetryDelay(ShadowOptions settings, int attempt, HttpResponseMessage? response, Random jitter)
    {
        if (response?.Headers.RetryAfter?.Delta is { } retryAfter && retryAfter <= TimeSpan.FromSeconds(10)) return retryAfter;
        var ceiling = settings.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, attempt - 1);
        lock (jitter) return TimeSpan.FromMilliseconds(ceiling / 2 + jitter.NextDouble() * ceiling / 2);
    }
}
