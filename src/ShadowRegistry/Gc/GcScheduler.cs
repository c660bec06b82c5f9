using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;

namespace ShadowRegistry.Gc;

/// <summary>
/// Runs garbage collection in the server every Registry:Gc:Interval (the first one interval after start) when
/// Registry:Gc:Enabled. Several processes sharing the store may all schedule it: the lease lets one run at a time.
/// </summary>
public sealed class GcScheduler(GarbageCollector collector, IOptions<RegistryOptions> options, TimeProvider time, ILogger<GcScheduler> logger)
    : IHostedService, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim running = new(1, 1);
    private ITimer? timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var gc = options.Value.Gc;
        if (gc.Enabled) timer = time.CreateTimer(_ => _ = PassAsync(), null, gc.Interval, gc.Interval);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await stopping.CancelAsync();
        if (timer is not null) await timer.DisposeAsync();
        await running.WaitAsync(cancellationToken);
        running.Release();
    }

    /// <summary>One scheduled collection; skipped while the previous one still runs.</summary>
    private async Task PassAsync()
    {
        if (!await running.WaitAsync(0)) return;
        try
        {
            await collector.RunAsync(dryRun: false, stopping.Token);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception e)
        {
            // Never out of a timer callback: the next interval tries again.
            logger.LogWarning(e, "Garbage collection failed; will try again");
        }
        finally
        {
            running.Release();
        }
    }

    public void Dispose()
    {
        timer?.Dispose();
        stopping.Dispose();
    }
}
