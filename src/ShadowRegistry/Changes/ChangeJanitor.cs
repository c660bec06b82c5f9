using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Changes;

/// <summary>
/// Removes, in the background, the overlays of changes that expired or were deleted (and of replaced incarnations),
/// every <see cref="ChangeOptions.CleanupInterval"/>. An expired change is already invisible before this runs; this
/// only frees its metadata. Blob bytes are left to garbage collection.
/// </summary>
public sealed class ChangeJanitor(ChangeService changes, IOptions<ChangeOptions> options, TimeProvider time, ILogger<ChangeJanitor> logger)
    : PeriodicPass(time, logger)
{
    protected override (TimeSpan Due, TimeSpan Period)? Schedule => (options.Value.CleanupInterval, options.Value.CleanupInterval);

    // One pass strictly before the next, and a fake clock's Advance returns only once the pass it triggered is done.
    protected override bool TimerWaitsForPass => true;

    protected override string Work => "Cleaning up changes";

    protected override async Task RunPassAsync(CancellationToken cancellationToken)
    {
        var removed = await changes.CleanUpAsync(cancellationToken);
        if (removed > 0) logger.LogInformation("Removed {Count} overlay(s) of expired or deleted changes", removed);
    }
}
