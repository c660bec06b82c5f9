using Microsoft.Extensions.Diagnostics.HealthChecks;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Hosting;

/// <summary>
/// Readiness of the storage: a probe object is written, read back and deleted through the storage driver, so a
/// read-only, full, unreachable or hung store makes the registry unready (a load balancer then stops sending it
/// pushes) while it stays alive. Each instance probes its own object, so replicas sharing a store never collide.
/// </summary>
public sealed class StorageHealthCheck(IStorageDriver driver) : IHealthCheck
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly string probePath = $"/health/probe-{Guid.NewGuid():N}";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        var content = Guid.NewGuid().ToByteArray();
        try
        {
            await driver.PutContentAsync(probePath, content, timeout.Token);
            var read = await driver.GetContentAsync(probePath, timeout.Token);
            await driver.DeleteAsync(probePath, timeout.Token);
            return read.AsSpan().SequenceEqual(content)
                ? HealthCheckResult.Healthy($"{driver.Name} storage is readable and writable")
                : HealthCheckResult.Unhealthy($"{driver.Name} storage returned other bytes than were written");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy($"{driver.Name} storage did not answer within {Timeout.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return HealthCheckResult.Unhealthy($"{driver.Name} storage is not writable: {e.Message}");
        }
    }
}
