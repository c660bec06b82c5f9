using ShadowRegistry.Gc;
using ShadowRegistry.Hosting;

namespace ShadowRegistry.Cli;

/// <summary>
/// <c>ShadowRegistry gc [--dry-run] [options]</c>: one garbage collection over the store the same configuration and
/// options describe (docs/gc.md), safe while registries serve it. Prints each thing removed (or that would be) and
/// the totals per kind.
/// </summary>
public static class GcCommand
{
    public const string Usage = """
        Usage: ShadowRegistry gc [--dry-run] [--data <folder>] [--<Section>:<Key> <value> ...]

        Runs one garbage collection over the storage the registry with the same configuration uses (appsettings.json,
        environment, options), while registries keep serving it. --dry-run changes nothing and prints what would go.
        Settings: Registry:Gc:* (GracePeriod, UntaggedAfter, TagRetention, CacheMaxBytes, CacheMaxAge, Parallelism), see docs/gc.md.
        Exit codes: 0 done, 1 another process is collecting right now, 2 usage or storage error.
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (args.Any(a => a is "-h" or "--help"))
        {
            output.WriteLine(Usage);
            return 0;
        }
        var dryRun = args.Contains("--dry-run");
        var rest = args.Where(a => a != "--dry-run").ToArray();
        if (rest.Length % 2 != 0 || rest.Where((_, i) => i % 2 == 0).Any(a => !a.StartsWith("--", StringComparison.Ordinal)))
        {
            error.WriteLine($"gc: options are '--<key> <value>' pairs\n\n{Usage}");
            return 2;
        }
        GcReport report;
        try
        {
            await using var app = RegistryApp.Build(rest);
            report = await app.Services.GetRequiredService<GarbageCollector>().RunAsync(dryRun, cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Microsoft.Extensions.Options.OptionsValidationException)
        {
            error.WriteLine($"gc: {e.Message}");
            return 2;
        }
        if (report.Skipped)
        {
            error.WriteLine("gc: another process is collecting garbage right now (its lease is in the store); nothing done");
            return 1;
        }
        var verb = dryRun ? "would remove" : "removed";
        foreach (var item in report.Items.OrderBy(i => Array.IndexOf(GcReport.Kinds, i.Kind)))
            output.WriteLine(item.Bytes > 0 ? $"{verb} {item.Kind}: {item.What} ({item.Bytes} bytes)" : $"{verb} {item.Kind}: {item.What}");
        foreach (var kind in GcReport.Kinds)
            output.WriteLine($"{kind}: {report.Removed[kind].Count} {verb} ({report.Removed[kind].Bytes} bytes)");
        output.WriteLine($"{(dryRun ? "would free" : "freed")} {report.BytesFreed} bytes in {report.Duration.TotalSeconds:0.0} s; "
            + $"{report.BlobsMarked} blobs in use, {report.BlobsInGrace} unused but kept for the grace period");
        return 0;
    }
}
