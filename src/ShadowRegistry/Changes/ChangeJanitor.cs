using Microsoft.Extensions.Options;

namespace ShadowRegistry.Changes;

/// <summary>
/// Removes, in the background, the overlays of changes that expired or were deleted (and of replaced incarnations),
/// every <see cref="ChangeOptions.CleanupInterval"/>. An expired change is already invisible before this runs; this
/// only frees its metadata. Blob bytes are left to garbage collection.
/// </summary>
public sealed class ChangeJanitor(ChangeService changes, IOptions<ChangeOptions> options, TimeProvider time, ILogger<ChangeJanitor> logger)
    : IHostedService, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim running = new(1, 1);
    private ITimer? timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Blocking on the timer's own thread keeps one pass strictly before the next (and a fake clock's Advance
        // returns only once the pass it triggered is done).
        timer = time.CreateTimer(_ => PassAsync().GetAwaiter().GetResult(), null, options.Value.CleanupInterval, options.Value.CleanupInterval);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await stopping.CancelAsync();
        if (timer is not null) await timer.DisposeAsync();
        await running.WaitAsync(cancellationToken);
        running.Release();
    }

    /// <summary>One clean-up pass; skipped when the previous one is still going. Public for tests driving a fake clock.</summary>
    public async Task PassAsync()
    {
        if (!await running.WaitAsync(0)) return;
        try
        {
            var removed = await changes.CleanUpAsync(stopping.Token);
            if (removed > 0) logger.LogInformation("Removed {Count} overlay(s) of expired or deleted changes", removed);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception e)
        {
            // Never out of a timer callback: the next tick tries again.
            logger.LogWarning(e, "Cleaning up changes failed; will try again");
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
        running.Dispose();
    }
}
