using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;

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
    ILogger<StorageJanitor> logger) : PeriodicPass(time, logger)
{
    // Due at once, but on the timer's thread: a large store must not hold up serving.
    protected override (TimeSpan Due, TimeSpan Period)? Schedule => (TimeSpan.Zero, options.Value.UploadCleanupInterval);

    // The timer's own thread waits for the pass, which keeps one pass strictly before the next.
    protected override bool TimerWaitsForPass => true;

    protected override string Work => "Storage cleanup";

    protected override async Task RunPassAsync(CancellationToken cancellationToken)
    {
        // Each step on its own: uploads that cannot be purged must not keep the debris from being swept.
        await StepAsync("abandoned uploads", () => uploads.PurgeAbandonedAsync(options.Value.UploadExpiry, cancellationToken), cancellationToken);
        await StepAsync("temporary files", () => debris.SweepAsync(options.Value.TemporaryFileExpiry, cancellationToken), cancellationToken);
    }

    private async Task StepAsync(string what, Func<Task> clean, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return;
        try
        {
            await clean();
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(e, "Cleaning {What} failed; will try again", what);
        }
    }
}
