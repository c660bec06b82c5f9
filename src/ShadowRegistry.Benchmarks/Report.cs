using System.Globalization;
using System.Text;

namespace ShadowRegistry.Benchmarks;

/// <summary>The markdown report: header, one table (the two servers side by side per scenario), notes and a summary.</summary>
public static class Report
{
    public const string Shadow = "ShadowRegistry";
    public const string Distribution = "distribution";

    public static string Render(IReadOnlyList<Row> rows, IReadOnlyList<string> header, IReadOnlyList<string> notes, out int violations)
    {
        var text = new StringBuilder();
        foreach (var line in header) text.AppendLine(line);
        text.AppendLine();
        text.AppendLine("| Scenario | Server | Ops | Err | Viol | ops/s | MiB/s | p50 ms | p95 ms | p99 ms | Peak RSS MiB | RSS after MiB | CPU s | CPU s/GiB | client CPU s | ops/s vs dist |");
        text.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var row in rows)
        {
            var other = rows.FirstOrDefault(r => r.Scenario == row.Scenario && r.Server == Distribution);
            var ratio = row.Server == Shadow && !row.IsStartup && other is { OpsPerSecond: > 0 } && row.OpsPerSecond > 0
                ? F(row.OpsPerSecond / other.OpsPerSecond, "0.00") + "×"
                : BaseRatio(rows, row) is { } vsBase
                    ? $"({F(vsBase.Ratio, "0.00")}× {Short(vsBase.Base.Scenario)})"
                    : "";
            text.AppendLine(string.Join(" | ", [
                "| " + row.Scenario,
                row.Server,
                row.Ops.ToString(CultureInfo.InvariantCulture),
                row.Errors.ToString(CultureInfo.InvariantCulture),
                row.Violations > 0 ? $"**{row.Violations}**" : "0",
                row.IsStartup ? "—" : F(row.OpsPerSecond, row.OpsPerSecond >= 100 ? "0" : "0.0"),
                row.IsStartup || !row.HasBytes ? "—" : F(row.MiBPerSecond, "0"),
                Ms(row.Percentile(50)),
                Ms(row.Percentile(95)),
                Ms(row.Percentile(99)),
                F(row.PeakRssKiB / 1024.0, "0") + (row.PeakSinceStart && !row.IsStartup ? "*" : ""),
                F(row.RssKiB / 1024.0, "0"),
                F(row.CpuSeconds, "0.00"),
                row.HasBytes && row.Bytes > 0 ? F(row.CpuSeconds / (row.Bytes / (1024.0 * BenchmarkOptions.MiB)), "0.00") : "—",
                row.ClientCpuSeconds is { } client ? F(client, "0.00") : "—",
                ratio + " |",
            ]));
        }
        text.AppendLine();
        foreach (var line in notes) text.AppendLine(line);

        var problems = rows.Where(r => r.Samples.Count > 0 || r.Note is not null).ToList();
        if (problems.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("Problems (first few per row):");
            foreach (var row in problems)
            {
                if (row.Note is not null) text.AppendLine($"- {row.Scenario} / {row.Server}: {row.Note}");
                foreach (var sample in row.Samples) text.AppendLine($"- {row.Scenario} / {row.Server}: {sample}");
            }
        }

        text.AppendLine();
        text.AppendLine(Summary(rows, out violations));
        return text.ToString();
    }

    /// <summary>A row compared with another scenario of the same server (not with distribution): ops/s ÷ that row's ops/s.</summary>
    private static (double Ratio, Row Base)? BaseRatio(IReadOnlyList<Row> rows, Row row)
    {
        if (row.BaseScenario is null || row.OpsPerSecond <= 0) return null;
        var baseRow = rows.FirstOrDefault(r => r.Scenario == row.BaseScenario && r.Server == row.Server);
        return baseRow is { OpsPerSecond: > 0 } ? (row.OpsPerSecond / baseRow.OpsPerSecond, baseRow) : null;
    }

    /// <summary>The lines the summary gives for scenarios compared with another scenario of the same server.</summary>
    private static IEnumerable<string> BaseLines(IReadOnlyList<Row> rows)
    {
        foreach (var row in rows.Where(r => r.BaseScenario is not null))
        {
            var compared = BaseRatio(rows, row);
            yield return compared is { } c
                ? string.Create(CultureInfo.InvariantCulture,
                    $"**{Short(row.Scenario)} (through a change view):** {row.Server} {row.OpsPerSecond:0} ops/s = {c.Ratio:0.00}× its own " +
                    $"\"{Short(c.Base.Scenario)}\" ({c.Base.OpsPerSecond:0} ops/s) in this run (target ≥ 0.80×: {(c.Ratio >= 0.8 ? "met" : "NOT met")}); " +
                    $"p50 {Ms(row.Percentile(50))} vs {Ms(c.Base.Percentile(50))} ms, p99 {Ms(row.Percentile(99))} vs {Ms(c.Base.Percentile(99))} ms.")
                : $"**{Short(row.Scenario)} (through a change view):** no ratio (no successful operations in it or in \"{row.BaseScenario}\").";
        }
    }

    private static string Summary(IReadOnlyList<Row> rows, out int violations)
    {
        var ratios = new List<(string Scenario, double Ratio)>();
        foreach (var shadow in rows.Where(r => r.Server == Shadow && !r.IsStartup))
        {
            var dist = rows.FirstOrDefault(r => r.Scenario == shadow.Scenario && r.Server == Distribution);
            if (dist is { OpsPerSecond: > 0 } && shadow.OpsPerSecond > 0) ratios.Add((shadow.Scenario, shadow.OpsPerSecond / dist.OpsPerSecond));
        }
        var text = new StringBuilder("**Summary:** ");
        if (ratios.Count > 0)
        {
            var geomean = Math.Exp(ratios.Average(r => Math.Log(r.Ratio)));
            var best = ratios.MaxBy(r => r.Ratio);
            var worst = ratios.MinBy(r => r.Ratio);
            text.Append(CultureInfo.InvariantCulture,
                $"ShadowRegistry throughput is {geomean:0.00}× distribution's (geometric mean of ops/s over {ratios.Count} scenarios; " +
                $"best {best.Ratio:0.00}× in \"{Short(best.Scenario)}\", worst {worst.Ratio:0.00}× in \"{Short(worst.Scenario)}\"). ");
        }
        double PeakMiB(string server) => rows.Where(r => r.Server == server).Select(r => r.PeakRssKiB / 1024.0).DefaultIfEmpty().Max();
        double Cpu(string server) => rows.Where(r => r.Server == server && !r.IsStartup).Sum(r => r.CpuSeconds);
        int Errors(string server) => rows.Where(r => r.Server == server).Sum(r => r.Errors);
        int Violations(string server) => rows.Where(r => r.Server == server).Sum(r => r.Violations);
        text.Append(CultureInfo.InvariantCulture,
            $"Highest peak RSS {PeakMiB(Shadow):0} MiB vs {PeakMiB(Distribution):0} MiB; " +
            $"server CPU over the scenarios {Cpu(Shadow):0.0} s vs {Cpu(Distribution):0.0} s; " +
            $"errors {Errors(Shadow)} vs {Errors(Distribution)}; correctness violations {Violations(Shadow)} vs {Violations(Distribution)}.");
        violations = Violations(Shadow) + Violations(Distribution);
        text.AppendLine();
        foreach (var line in BaseLines(rows)) text.AppendLine(line);
        text.Append(violations > 0
            ? $"**RESULT: {violations} CORRECTNESS VIOLATION(S)** (see Problems above); exit code 1."
            : "Result: no correctness violations.");
        return text.ToString();
    }

    private static string Short(string scenario) => scenario.Split(' ', 3) is { Length: >= 2 } parts ? $"{parts[0]} {parts[1]}" : scenario;

    private static string Ms(double? ms) => ms is { } v ? F(v, v >= 100 ? "0" : v >= 10 ? "0.0" : "0.00") : "—";

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
