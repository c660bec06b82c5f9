using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;

namespace ShadowRegistry.Storage;

/// <summary>
/// Removes abandoned upload sessions and crash debris at start-up and then every UploadCleanupInterval, so clients
/// that vanished mid-push and processes killed mid-write do not fill the disk.
/// </summary>
public sealed class StorageJanitor(
    UploadStore uploads,
    CrashDebris debris,
    IOptions<RegistryOptions> options,
    TimeProvider time,
    ILogger<StorageJanitor> logger) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim running = new(1, 1);
    private ITimer? timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Due at once, but on the timer's thread: a large store must not hold up serving.
        timer = time.CreateTimer(_ => Pass(), null, TimeSpan.Zero, options.Value.UploadCleanupInterval);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await stopping.CancelAsync();
        if (timer is not null) await timer.DisposeAsync();
        // Let a pass in progress notice the cancellation before the storage goes away under it.
        await running.WaitAsync(cancellationToken);
        running.Release();
    }

    private void Pass()
    {
        if (!running.Wait(0)) return; // the previous pass is still going: skip this tick rather than pile up
        try
        {
            // Blocking is fine on the timer's own thread, and keeps one pass strictly before the next.
            Run("abandoned uploads", () => uploads.PurgeAbandonedAsync(options.Value.UploadExpiry, stopping.Token).GetAwaiter().GetResult());
            Run("temporary files", () => debris.SweepAsync(options.Value.TemporaryFileExpiry, stopping.Token).GetAwaiter().GetResult());
        }
        finally
        {
            running.Release();
        }
    }

    private void Run(string what, Action clean)
    {
        if (stopping.IsCancellationRequested) return;
        try
        {
            clean();
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception e)
        {
            // Anything escaping a timer callback would end the process; the next tick tries again.
            logger.LogWarning(e, "Cleaning {What} failed; will try again", what);
        }
    }

    public void Dispose()
    {
        timer?.Dispose();
        stopping.Dispose();
    }
}
