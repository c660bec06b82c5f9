using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Gc;

/// <summary>
/// Runs garbage collection in the server every Registry:Gc:Interval (the first one interval after start) when
/// Registry:Gc:Enabled. Several processes sharing the store may all schedule it: the lease lets one run at a time.
/// </summary>
public sealed class GcScheduler(GarbageCollector collector, IOptions<RegistryOptions> options, TimeProvider time, ILogger<GcScheduler> logger)
    : PeriodicPass(time, logger)
{
    protected override (TimeSpan Due, TimeSpan Period)? Schedule =>
        options.Value.Gc is { Enabled: true } gc ? (gc.Interval, gc.Interval) : null;

    protected override string Work => "Garbage collection";

    protected override Task RunPassAsync(CancellationToken cancellationToken) => collector.RunAsync(dryRun: false, cancellationToken);
}
