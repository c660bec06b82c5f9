namespace ShadowRegistry.Observability;

/// <summary>One upstream's running totals: attempts, failed ones (no answer, 5xx, circuit open), and their time.</summary>
public sealed record UpstreamFigures(long Requests, long Failures, double DurationSeconds, long Timed, bool CircuitOpen);

/// <summary>Running totals of the registry's metrics at one moment (<see cref="RegistryMetrics.Snapshot"/>).</summary>
public sealed record MetricsSnapshot(DateTimeOffset At, long Requests, long ClientErrors, long ServerErrors, long CacheHits, long CacheMisses,
    IReadOnlyDictionary<string, UpstreamFigures> Upstreams);

/// <summary>
/// The last hour of <see cref="MetricsSnapshot"/>s, one every <see cref="Interval"/>, kept in memory for the operator
/// page's charts (rates are differences between neighbouring samples). Bounded: the oldest sample goes when a new
/// one would make more than an hour's worth. The first sample is taken one interval after start-up, so starting
/// costs nothing but a timer.
/// </summary>
public sealed class MetricsHistory(RegistryMetrics metrics, TimeProvider time) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan Span = TimeSpan.FromHours(1);

    /// <summary>An hour of samples plus the one the first difference starts from.</summary>
    public static readonly int Capacity = (int)(Span / Interval) + 1;

    private readonly Queue<MetricsSnapshot> samples = new(Capacity);
    private readonly Lock gate = new();

    /// <summary>The kept samples, oldest first, then one taken now.</summary>
    public IReadOnlyList<MetricsSnapshot> Samples()
    {
        var now = metrics.Snapshot(time.GetUtcNow());
        lock (gate) return [.. samples.Where(s => now.At - s.At <= Span), now];
    }

    /// <summary>Takes a sample now (the timer's work; tests call it to have samples without waiting).</summary>
    public void Sample()
    {
        var sample = metrics.Snapshot(time.GetUtcNow());
        lock (gate)
        {
            while (samples.Count >= Capacity) samples.Dequeue();
            samples.Enqueue(sample);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) Sample();
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }
}
