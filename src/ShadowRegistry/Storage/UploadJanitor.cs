using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;

namespace ShadowRegistry.Storage;

/// <summary>Periodically removes abandoned upload sessions, so clients that vanished mid-push do not fill the disk.</summary>
public sealed class UploadJanitor(UploadStore uploads, IOptions<RegistryOptions> options, ILogger<UploadJanitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.UploadCleanupInterval);
        do
        {
            try
            {
                uploads.PurgeAbandoned(options.Value.UploadExpiry);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning(e, "Cleaning abandoned uploads failed; will try again");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
