using System.Diagnostics;

namespace ShadowRegistry.Benchmarks;

/// <summary>Collects what the operations of one (scenario, server) run did. Thread-safe.</summary>
public sealed class Recorder
{
    private const int MaxSamples = 3;
    private readonly Lock gate = new();
    private readonly List<double> latenciesMs = [];
    private readonly List<string> samples = [];

    public int Ops { get; private set; }
    public int Errors { get; private set; }
    public int Violations { get; private set; }
    public long Bytes { get; private set; }
    public IReadOnlyList<string> Samples => samples;

    public void Attempted()
    {
        lock (gate) Ops++;
    }

    public void Success(double latencyMs, long bytes)
    {
        lock (gate)
        {
            latenciesMs.Add(latencyMs);
            Bytes += bytes;
        }
    }

    public void Error(string message)
    {
        lock (gate)
        {
            Errors++;
            if (samples.Count < MaxSamples) samples.Add("error: " + message);
        }
    }

    public void Violation(string message)
    {
        lock (gate)
        {
            Violations++;
            if (samples.Count < MaxSamples) samples.Add("VIOLATION: " + message);
        }
    }

    public double[] SortedLatencies()
    {
        lock (gate)
        {
            var sorted = latenciesMs.ToArray();
            Array.Sort(sorted);
            return sorted;
        }
    }

    /// <summary>
    /// Runs <paramref name="count"/> operations on <paramref name="concurrency"/> workers. An operation returns the bytes
    /// it moved; a <see cref="CorrectnessViolationException"/> counts as a violation, any other failure as an error.
    /// </summary>
    public async Task RunAsync(int count, int concurrency, Func<int, CancellationToken, Task<long>> operation, CancellationToken cancellationToken)
    {
        var next = -1;
        var workers = Enumerable.Range(0, Math.Min(concurrency, count)).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await RunOneAsync(() => operation(i, cancellationToken), cancellationToken);
            }
        }, cancellationToken));
        await Task.WhenAll(workers);
    }

    /// <summary>Runs and records one operation (latency only when it succeeded).</summary>
    public async Task<bool> RunOneAsync(Func<Task<long>> operation, CancellationToken cancellationToken)
    {
        Attempted();
        var start = Stopwatch.GetTimestamp();
        try
        {
            var bytes = await operation();
            Success(Stopwatch.GetElapsedTime(start).TotalMilliseconds, bytes);
            return true;
        }
        catch (CorrectnessViolationException e)
        {
            Violation(e.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e)
        {
            Error(e is BenchmarkRequestException ? e.Message : $"{e.GetType().Name}: {e.Message}");
        }
        return false;
    }
}

/// <summary>One line of the table: one scenario against one server.</summary>
public sealed class Row
{
    public required string Scenario { get; init; }
    public required string Server { get; init; }
    public bool IsStartup { get; init; }
    public bool HasBytes { get; init; }
    public int Ops { get; init; }
    public int Errors { get; init; }
    public int Violations { get; init; }
    public long Bytes { get; init; }
    public double Seconds { get; init; }
    public double[] Latencies { get; init; } = [];
    public long PeakRssKiB { get; init; }
    public long RssKiB { get; init; }
    public double CpuSeconds { get; init; }
    /// <summary>CPU of the client side (this program and the tools it ran) during the scenario.</summary>
    public double? ClientCpuSeconds { get; init; }
    public bool PeakSinceStart { get; init; }
    public string? Note { get; init; }
    public IReadOnlyList<string> Samples { get; init; } = [];
    /// <summary>For a ShadowRegistry-only scenario: the scenario whose ShadowRegistry row it is compared with.</summary>
    public string? BaseScenario { get; init; }

    public double OpsPerSecond => Seconds > 0 ? Latencies.Length / Seconds : 0;
    public double MiBPerSecond => Seconds > 0 ? Bytes / (double)BenchmarkOptions.MiB / Seconds : 0;

    /// <summary>Nearest-rank percentile of the successful operations' latencies, in ms.</summary>
    public double? Percentile(double p)
    {
        if (Latencies.Length == 0) return null;
        var rank = (int)Math.Ceiling(p / 100 * Latencies.Length);
        return Latencies[Math.Clamp(rank - 1, 0, Latencies.Length - 1)];
    }
}
