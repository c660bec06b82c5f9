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

    private readonly Lazy<Instruments> instruments;

    public RegistryMetrics()
    {
        instruments = new(() => new Instruments(Metrics.WithCustomRegistry(Registry)), LazyThreadSafetyMode.ExecutionAndPublication);
        // Creating the first collectors costs tens of milliseconds (prometheus-net compiles its name-checking regexes),
        // so it starts now on a pool thread instead of on the first request; whoever needs them first waits for them.
        ThreadPool.UnsafeQueueUserWorkItem(static lazy =>
        {
            try
            {
                _ = lazy.Value;
            }
            catch (Exception)
            {
                // Not here, where nobody would see it: the Lazy keeps the failure for the first caller.
            }
        }, instruments, preferLocal: false);
        Registry.AddBeforeCollectCallback(() => _ = instruments.Value);
    }

    /// <summary>The collector registry that <c>/metrics</c> serves.</summary>
    internal CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private Instruments I => instruments.Value;

    // --- HTTP (see HttpMetricsMiddleware) ---

    internal void HttpRequestStarted() => I.HttpInFlight.Inc();

    internal void HttpRequestEnded(string route, string method, string status, TimeSpan duration)
    {
        I.HttpInFlight.Dec();
        I.HttpRequests.WithLabels(route, method, status).Inc();
        I.HttpDuration.WithLabels(route, method, status).Observe(duration.TotalSeconds);
    }

    /// <summary>The counters of a route's body bytes, looked up once per request rather than once per read or write.</summary>
    internal (Action<long> Received, Action<long> Sent) BodyBytes(string route)
    {
        var received = I.HttpReceived.WithLabels(route);
        var sent = I.HttpSent.WithLabels(route);
        return (count => received.Inc(count), count => sent.Inc(count));
    }

    // --- Storage ---

    public void UploadSessionOpened() => I.UploadSessions.Inc();

    public void UploadSessionEnded() => I.UploadSessions.Dec();

    public void BlobCommitted(BlobSource source, long size)
    {
        var label = Label(source);
        I.BlobCommits.WithLabels(label).Inc();
        I.BlobCommitBytes.WithLabels(label).Inc(size);
        I.BlobCommitSize.WithLabels(label).Observe(size);
    }

    public void ManifestPushed(bool isIndex) => I.ManifestPushes.WithLabels(isIndex ? "index" : "image").Inc();

    // --- Upstream ---

    /// <param name="outcome">answered, failed, unreachable, ignored, or rejected (its circuit was open).</param>
    /// <param name="status">The HTTP status, or null when there was no answer.</param>
    public void UpstreamRequest(string upstream, string outcome, int? status, TimeSpan duration)
    {
        I.UpstreamRequests.WithLabels(upstream, outcome, status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none").Inc();
        I.UpstreamDuration.WithLabels(upstream, outcome).Observe(duration.TotalSeconds);
    }

    /// <param name="cache">manifest or blob.</param>
    public void UpstreamCache(string cache, bool hit) => (hit ? I.CacheHits : I.CacheMisses).WithLabels(cache).Inc();

    /// <param name="kind">manifest, blob or token.</param>
    public void UpstreamCollapsed(string kind) => I.Collapsed.WithLabels(kind).Inc();

    public void UpstreamCircuit(string upstream, bool open) => I.CircuitOpen.WithLabels(upstream).Set(open ? 1 : 0);

    // --- Authentication ---

    /// <param name="reason">invalid_token, no_token, insufficient_scope, bad_credentials, throttled or anonymous_refused.</param>
    public void AuthFailure(string reason) => I.AuthFailures.WithLabels(reason).Inc();

    // --- Replication (label values: the configured destination names) ---

    /// <summary>One replication event (a tag or a pushed referrer) processed for a destination, successfully or not.</summary>
    public void ReplicationEvent(string destination, bool succeeded) => I.ReplicationEvents.WithLabels(destination, succeeded ? "replicated" : "failed").Inc();

    /// <summary>
    /// A reconcile of a destination finished: <c>in_sync</c>, <c>differences</c> (some left), or <c>failed</c> (it
    /// could not run, e.g. the catalog unreadable); <paramref name="unixSeconds"/> is when it began.
    /// </summary>
    public void ReplicationReconciled(string destination, string outcome, long unixSeconds)
    {
        I.ReplicationReconciles.WithLabels(destination, outcome).Inc();
        I.ReplicationLastReconcile.WithLabels(destination).Set(unixSeconds);
    }

    /// <summary>Events not yet replicated to a destination and the age of the oldest (0 when none).</summary>
    public void ReplicationState(string destination, int pending, double lagSeconds)
    {
        I.ReplicationPending.WithLabels(destination).Set(pending);
        I.ReplicationLag.WithLabels(destination).Set(lagSeconds);
    }

    // --- Garbage collection ---

    /// <summary>What one collection removed of one kind (overlays, uploads, tags, manifests, cache_links, blobs).</summary>
    public void GcRemoved(string kind, long count, long bytes)
    {
        I.GcRemoved.WithLabels(kind).Inc(count);
        I.GcRemovedBytes.WithLabels(kind).Inc(bytes);
    }

    /// <param name="outcome">completed, failed, or skipped (another process held the lease).</param>
    public void GcRun(string outcome, TimeSpan duration, long unixSeconds)
    {
        I.GcRuns.WithLabels(outcome).Inc();
        if (outcome == "skipped") return;
        I.GcDuration.Observe(duration.TotalSeconds);
        I.GcLastRun.Set(unixSeconds);
    }

    /// <summary>
    /// The running totals the operator page charts (<see cref="MetricsHistory"/>): the same figures /metrics serves,
    /// summed over the labels the page does not break down.
    /// </summary>
    public MetricsSnapshot Snapshot(DateTimeOffset at)
    {
        long requests = 0, clientErrors = 0, serverErrors = 0;
        foreach (var labels in I.HttpRequests.GetAllLabelValues())
        {
            var count = (long)I.HttpRequests.WithLabels(labels).Value;
            requests += count;
            if (labels[2].StartsWith('5')) serverErrors += count;
            else if (labels[2].StartsWith('4')) clientErrors += count;
        }
        long hits = 0, misses = 0;
        foreach (var labels in I.CacheHits.GetAllLabelValues()) hits += (long)I.CacheHits.WithLabels(labels).Value;
        foreach (var labels in I.CacheMisses.GetAllLabelValues()) misses += (long)I.CacheMisses.WithLabels(labels).Value;
        var upstreams = new Dictionary<string, UpstreamFigures>(StringComparer.Ordinal);
        foreach (var labels in I.UpstreamRequests.GetAllLabelValues())
        {
            var count = (long)I.UpstreamRequests.WithLabels(labels).Value;
            var figures = upstreams.GetValueOrDefault(labels[0]) ?? new UpstreamFigures(0, 0, 0, 0, false);
            upstreams[labels[0]] = figures with
            {
                Requests = figures.Requests + count,
                Failures = figures.Failures + (labels[1] is "answered" or "ignored" ? 0 : count),
            };
        }
        foreach (var labels in I.UpstreamDuration.GetAllLabelValues())
        {
            var child = I.UpstreamDuration.WithLabels(labels);
            var figures = upstreams.GetValueOrDefault(labels[0]) ?? new UpstreamFigures(0, 0, 0, 0, false);
            upstreams[labels[0]] = figures with { DurationSeconds = figures.DurationSeconds + child.Sum, Timed = figures.Timed + (long)child.Count };
        }
        foreach (var labels in I.CircuitOpen.GetAllLabelValues())
        {
            var figures = upstreams.GetValueOrDefault(labels[0]) ?? new UpstreamFigures(0, 0, 0, 0, false);
            upstreams[labels[0]] = figures with { CircuitOpen = I.CircuitOpen.WithLabels(labels).Value > 0 };
        }
        return new MetricsSnapshot(at, requests, clientErrors, serverErrors, hits, misses, upstreams);
    }

    /// <summary>Runs <paramref name="update"/> before every scrape (for gauges computed from current state).</summary>
    public void OnCollect(Action update) => Registry.AddBeforeCollectCallback(update);

    private static string Label(BlobSource source) => source switch
    {
        BlobSource.Upload => "upload",
        BlobSource.Manifest => "manifest",
        _ => "upstream",
    };

    /// <summary>The collectors, created together once.</summary>
    private sealed class Instruments
    {
        // Request latency: from a cached manifest (sub-millisecond) to a large layer (minutes).
        private static readonly double[] DurationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

        // Blob sizes: 1 KiB (configs) to 4 GiB (the fattest layers), by powers of 4.
        private static readonly double[] SizeBuckets = Histogram.ExponentialBuckets(1024, 4, 12);

        public Instruments(MetricFactory factory)
        {
            HttpRequests = factory.CreateCounter(Prefix + "http_requests_total", "HTTP requests answered, by route template, method and status.", "route", "method", "status");
            HttpDuration = factory.CreateHistogram(Prefix + "http_request_duration_seconds", "Time from a request's arrival to the end of its response, by route template, method and status.",
                new HistogramConfiguration { LabelNames = ["route", "method", "status"], Buckets = DurationBuckets });
            HttpInFlight = factory.CreateGauge(Prefix + "http_requests_in_flight", "HTTP requests being handled right now.");
            HttpReceived = factory.CreateCounter(Prefix + "http_received_bytes_total", "Request body bytes read, by route template.", "route");
            HttpSent = factory.CreateCounter(Prefix + "http_sent_bytes_total", "Response body bytes written, by route template.", "route");
            UploadSessions = factory.CreateGauge(Prefix + "upload_sessions_in_flight", "Upload sessions this process started that are not yet finished, cancelled or expired.");
            BlobCommits = factory.CreateCounter(Prefix + "blob_commits_total", "Blobs verified and committed to storage, by source (upload, manifest, upstream).", "source");
            BlobCommitBytes = factory.CreateCounter(Prefix + "blob_commit_bytes_total", "Bytes of the blobs committed, by source.", "source");
            BlobCommitSize = factory.CreateHistogram(Prefix + "blob_commit_size_bytes", "Size of each committed blob, by source.",
                new HistogramConfiguration { LabelNames = ["source"], Buckets = SizeBuckets });
            ManifestPushes = factory.CreateCounter(Prefix + "manifest_pushes_total", "Manifests pushed and stored, by kind (image or index).", "kind");
            UpstreamRequests = factory.CreateCounter(Prefix + "upstream_requests_total",
                "Attempts of requests to upstream registries (each retry counts), by upstream, outcome (answered, failed, unreachable, rejected, ignored) and status.",
                "upstream", "outcome", "status");
            UpstreamDuration = factory.CreateHistogram(Prefix + "upstream_request_duration_seconds", "Time an upstream attempt took to answer with headers, by upstream and outcome.",
                new HistogramConfiguration { LabelNames = ["upstream", "outcome"], Buckets = DurationBuckets });
            CacheHits = factory.CreateCounter(Prefix + "upstream_cache_hits_total", "Shadowed reads answered without asking the upstream for the content, by cache (manifest or blob).", "cache");
            CacheMisses = factory.CreateCounter(Prefix + "upstream_cache_misses_total", "Shadowed reads that had to ask the upstream for the content, by cache (manifest or blob).", "cache");
            Collapsed = factory.CreateCounter(Prefix + "upstream_collapsed_requests_total",
                "Upstream requests not sent because an identical one was already in flight (single-flight), by kind (manifest, blob, token).", "kind");
            CircuitOpen = factory.CreateGauge(Prefix + "upstream_circuit_open", "1 while the circuit breaker of an upstream (or token realm host) is open, else 0.", "upstream");
            AuthFailures = factory.CreateCounter(Prefix + "auth_failures_total",
                "Requests refused by authentication, by reason (invalid_token, no_token, insufficient_scope, bad_credentials, throttled, anonymous_refused).", "reason");

            ReplicationEvents = factory.CreateCounter(Prefix + "replication_events_total",
                "Replication events (tag changes, pushed referrers) processed, by destination and outcome (replicated, failed; each attempt counts).", "destination", "outcome");
            ReplicationReconciles = factory.CreateCounter(Prefix + "replication_reconciles_total",
                "Periodic reconciles finished, by destination and outcome (in_sync, differences, failed).", "destination", "outcome");
            ReplicationLastReconcile = factory.CreateGauge(Prefix + "replication_last_reconcile_timestamp_seconds", "When the last reconcile of a destination began (Unix time).", "destination");
            ReplicationPending = factory.CreateGauge(Prefix + "replication_pending_events", "Events not yet replicated to a destination (queued, running or waiting for a retry).", "destination");
            ReplicationLag = factory.CreateGauge(Prefix + "replication_lag_seconds",
                "Age of the oldest change not yet replicated to a destination (including ones left to the next reconcile); 0 when in step.", "destination");

            GcRuns = factory.CreateCounter(Prefix + "gc_runs_total", "Garbage collections, by outcome (completed, failed, skipped: another process held the lease).", "outcome");
            GcRemoved = factory.CreateCounter(Prefix + "gc_removed_total",
                "What garbage collection removed, by kind (overlays, uploads, tags, manifests, cache_links, blobs).", "kind");
            GcRemovedBytes = factory.CreateCounter(Prefix + "gc_removed_bytes_total", "Bytes garbage collection freed, by kind (uploads and blobs hold bytes).", "kind");
            GcDuration = factory.CreateHistogram(Prefix + "gc_run_duration_seconds", "Time each garbage collection took.",
                new HistogramConfiguration { Buckets = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600] });
            GcLastRun = factory.CreateGauge(Prefix + "gc_last_run_timestamp_seconds", "When the last garbage collection that ran began (Unix time).");

            // Series that exist from the start, so a dashboard shows 0 rather than nothing before the first event.
            foreach (var source in Enum.GetValues<BlobSource>())
            {
                BlobCommits.WithLabels(Label(source));
                BlobCommitBytes.WithLabels(Label(source));
            }
            foreach (var cache in new[] { "manifest", "blob" })
            {
                CacheHits.WithLabels(cache);
                CacheMisses.WithLabels(cache);
            }
        }

        public Counter HttpRequests { get; }
        public Histogram HttpDuration { get; }
        public Gauge HttpInFlight { get; }
        public Counter HttpReceived { get; }
        public Counter HttpSent { get; }
        public Gauge UploadSessions { get; }
        public Counter BlobCommits { get; }
        public Counter BlobCommitBytes { get; }
        public Histogram BlobCommitSize { get; }
        public Counter ManifestPushes { get; }
        public Counter UpstreamRequests { get; }
        public Histogram UpstreamDuration { get; }
        public Counter CacheHits { get; }
        public Counter CacheMisses { get; }
        public Counter Collapsed { get; }
        public Gauge CircuitOpen { get; }
        public Counter AuthFailures { get; }
        public Counter ReplicationEvents { get; }
        public Counter ReplicationReconciles { get; }
        public Gauge ReplicationLastReconcile { get; }
        public Gauge ReplicationPending { get; }
        public Gauge ReplicationLag { get; }
        public Counter GcRuns { get; }
        public Counter GcRemoved { get; }
        public Counter GcRemovedBytes { get; }
        public Histogram GcDuration { get; }
        public Gauge GcLastRun { get; }
    }
}
