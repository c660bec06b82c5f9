using Prometheus;

namespace ShadowRegistry.Observability;

/// <summary>Where a committed blob came from.</summary>
public enum BlobSource
{
    /// <summary>A client's upload: a finished session or a monolithic POST.</summary>
    Upload,

    /// <summary>The bytes of a pushed manifest.</summary>
    Manifest,

    /// <summary>A blob fetched from an upstream and kept (pull-through cache, mounts).</summary>
    Upstream,
}

/// <summary>
/// The registry's metrics, in Prometheus terms. The rest of the code reports what happened through these methods and
/// never sees a Prometheus type, so the exporter stays a detail of this folder. Each instance has its own collector
/// registry rather than prometheus-net's static one: every registry in a process (the tests run many) counts only
/// its own requests, and the framework's default process and event-counter collectors are not started.
/// Label values are always from small fixed sets (route templates, method names, upstream names, reasons), never
/// repository names, paths or digests.
/// </summary>
public sealed class RegistryMetrics
{
    public const string Prefix = "shadowregistry_";

    // Request latency: from a cached manifest (sub-millisecond) to a large layer (minutes).
    private static readonly double[] DurationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    // Blob sizes: 1 KiB (configs) to 4 GiB (the fattest layers), by powers of 4.
    private static readonly double[] SizeBuckets = Histogram.ExponentialBuckets(1024, 4, 12);

    private readonly Counter httpRequests;
    private readonly Histogram httpDuration;
    private readonly Gauge httpInFlight;
    private readonly Counter httpReceived;
    private readonly Counter httpSent;
    private readonly Gauge uploadSessions;
    private readonly Counter blobCommits;
    private readonly Counter blobCommitBytes;
    private readonly Histogram blobCommitSize;
    private readonly Counter manifestPushes;
    private readonly Counter upstreamRequests;
    private readonly Histogram upstreamDuration;
    private readonly Counter cacheHits;
    private readonly Counter cacheMisses;
    private readonly Counter collapsed;
    private readonly Gauge circuitOpen;
    private readonly Counter authFailures;

    public RegistryMetrics()
    {
        var factory = Metrics.WithCustomRegistry(Registry);
        httpRequests = factory.CreateCounter(Prefix + "http_requests_total", "HTTP requests answered, by route template, method and status.", "route", "method", "status");
        httpDuration = factory.CreateHistogram(Prefix + "http_request_duration_seconds", "Time from a request's arrival to the end of its response, by route template, method and status.",
            new HistogramConfiguration { LabelNames = ["route", "method", "status"], Buckets = DurationBuckets });
        httpInFlight = factory.CreateGauge(Prefix + "http_requests_in_flight", "HTTP requests being handled right now.");
        httpReceived = factory.CreateCounter(Prefix + "http_received_bytes_total", "Request body bytes read, by route template.", "route");
        httpSent = factory.CreateCounter(Prefix + "http_sent_bytes_total", "Response body bytes written, by route template.", "route");
        uploadSessions = factory.CreateGauge(Prefix + "upload_sessions_in_flight", "Upload sessions this process started or wrote to that are not yet finished, cancelled or expired.");
        blobCommits = factory.CreateCounter(Prefix + "blob_commits_total", "Blobs verified and committed to storage, by source (upload, manifest, upstream).", "source");
        blobCommitBytes = factory.CreateCounter(Prefix + "blob_commit_bytes_total", "Bytes of the blobs committed, by source.", "source");
        blobCommitSize = factory.CreateHistogram(Prefix + "blob_commit_size_bytes", "Size of each committed blob, by source.",
            new HistogramConfiguration { LabelNames = ["source"], Buckets = SizeBuckets });
        manifestPushes = factory.CreateCounter(Prefix + "manifest_pushes_total", "Manifests pushed and stored, by kind (image or index).", "kind");
        upstreamRequests = factory.CreateCounter(Prefix + "upstream_requests_total",
            "Attempts of requests to upstream registries (each retry counts), by upstream, outcome (answered, failed, unreachable, rejected, ignored) and status.",
            "upstream", "outcome", "status");
        upstreamDuration = factory.CreateHistogram(Prefix + "upstream_request_duration_seconds", "Time an upstream attempt took to answer with headers, by upstream and outcome.",
            new HistogramConfiguration { LabelNames = ["upstream", "outcome"], Buckets = DurationBuckets });
        cacheHits = factory.CreateCounter(Prefix + "upstream_cache_hits_total", "Shadowed reads answered without asking the upstream for the content, by cache (manifest or blob).", "cache");
        cacheMisses = factory.CreateCounter(Prefix + "upstream_cache_misses_total", "Shadowed reads that had to ask the upstream for the content, by cache (manifest or blob).", "cache");
        collapsed = factory.CreateCounter(Prefix + "upstream_collapsed_requests_total",
            "Upstream requests not sent because an identical one was already in flight (single-flight), by kind (manifest, blob, token).", "kind");
        circuitOpen = factory.CreateGauge(Prefix + "upstream_circuit_open", "1 while the circuit breaker of an upstream (or token realm host) is open, else 0.", "upstream");
        authFailures = factory.CreateCounter(Prefix + "auth_failures_total",
            "Requests refused by authentication, by reason (invalid_token, no_token, insufficient_scope, bad_credentials, throttled, anonymous_refused).", "reason");

        // Series that exist from the start, so a dashboard shows 0 rather than nothing before the first event.
        foreach (var source in Enum.GetValues<BlobSource>()) Touch(Label(source));
        foreach (var cache in new[] { "manifest", "blob" })
        {
            cacheHits.WithLabels(cache);
            cacheMisses.WithLabels(cache);
        }
    }

    /// <summary>The collector registry that <c>/metrics</c> serves.</summary>
    internal CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    // --- HTTP (see HttpMetricsMiddleware) ---

    internal void HttpRequestStarted() => httpInFlight.Inc();

    internal void HttpRequestEnded(string route, string method, string status, TimeSpan duration)
    {
        httpInFlight.Dec();
        httpRequests.WithLabels(route, method, status).Inc();
        httpDuration.WithLabels(route, method, status).Observe(duration.TotalSeconds);
    }

    /// <summary>The counters of a route's body bytes, looked up once per request rather than once per read or write.</summary>
    internal (Action<long> Received, Action<long> Sent) BodyBytes(string route)
    {
        var received = httpReceived.WithLabels(route);
        var sent = httpSent.WithLabels(route);
        return (count => received.Inc(count), count => sent.Inc(count));
    }

    // --- Storage ---

    public void UploadSessionOpened() => uploadSessions.Inc();

    public void UploadSessionEnded() => uploadSessions.Dec();

    public void BlobCommitted(BlobSource source, long size)
    {
        var label = Label(source);
        blobCommits.WithLabels(label).Inc();
        blobCommitBytes.WithLabels(label).Inc(size);
        blobCommitSize.WithLabels(label).Observe(size);
    }

    public void ManifestPushed(bool isIndex) => manifestPushes.WithLabels(isIndex ? "index" : "image").Inc();

    // --- Upstream ---

    /// <param name="outcome">answered, failed, unreachable, ignored, or rejected (its circuit was open).</param>
    /// <param name="status">The HTTP status, or null when there was no answer.</param>
    public void UpstreamRequest(string upstream, string outcome, int? status, TimeSpan duration)
    {
        upstreamRequests.WithLabels(upstream, outcome, status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none").Inc();
        upstreamDuration.WithLabels(upstream, outcome).Observe(duration.TotalSeconds);
    }

    /// <param name="cache">manifest or blob.</param>
    public void UpstreamCache(string cache, bool hit) => (hit ? cacheHits : cacheMisses).WithLabels(cache).Inc();

    /// <param name="kind">manifest, blob or token.</param>
    public void UpstreamCollapsed(string kind) => collapsed.WithLabels(kind).Inc();

    public void UpstreamCircuit(string upstream, bool open) => circuitOpen.WithLabels(upstream).Set(open ? 1 : 0);

    // --- Authentication ---

    /// <param name="reason">invalid_token, no_token, insufficient_scope, bad_credentials, throttled or anonymous_refused.</param>
    public void AuthFailure(string reason) => authFailures.WithLabels(reason).Inc();

    private void Touch(string source)
    {
        blobCommits.WithLabels(source);
        blobCommitBytes.WithLabels(source);
    }

    private static string Label(BlobSource source) => source switch
    {
        BlobSource.Upload => "upload",
        BlobSource.Manifest => "manifest",
        _ => "upstream",
    };
}
