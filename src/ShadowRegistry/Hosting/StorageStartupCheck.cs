using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Hosting;

/// <summary>
/// Fails start-up, with the store's reason, when a remote storage driver cannot reach its store or its credentials
/// are refused, instead of letting the registry come up and fail every request. Drivers on a local folder need no check.
/// </summary>
public sealed class StorageStartupCheck(IStorageDriver driver, ILogger<StorageStartupCheck> logger) : IHostedService
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (driver is not IStartupCheck check) return;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            await check.EnsureReadyAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new InvalidOperationException($"{driver.Name} storage did not answer within {Timeout.TotalSeconds:0} s at start-up");
        }
        catch (StorageDriverException e)
        {
            throw new InvalidOperationException($"{driver.Name} storage cannot be used: {e.Message}", e);
        }
        logger.LogInformation("{Driver} storage is reachable", driver.Name);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
