using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using ShadowRegistry.Benchmarks;

// Speed and memory of ShadowRegistry next to CNCF distribution, measured in the same run on the same machine.
// See docs/benchmark.md. Exit codes: 0 ok, 1 correctness violation, 2 setup failure, 130 interrupted.

BenchmarkOptions options;
try
{
    options = BenchmarkOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"{e.Message}\n\n{BenchmarkOptions.Usage}");
    return 2;
}
if (options.ShowHelp)
{
    Console.WriteLine(BenchmarkOptions.Usage);
    return 0;
}

using var cancellation = new CancellationTokenSource();
var signals = 0;
void OnSignal(PosixSignalContext context)
{
    context.Cancel = true; // let Main unwind and clean up
    if (Interlocked.Increment(ref signals) == 1)
    {
        Console.Error.WriteLine($"{context.Signal}: stopping; the servers are killed and their folders deleted (signal again to force)");
        cancellation.Cancel();
    }
    else
    {
        Cleanup.RunAll();
        Environment.Exit(130);
    }
}
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);
AppDomain.CurrentDomain.ProcessExit += (_, _) => Cleanup.RunAll();

var targets = new List<Target>();
try
{
    var setup = await Setup.PrepareAsync(options, cancellation.Token);
    var tempRoot = Path.Combine(options.TempDir ?? Path.GetTempPath(), $"shadowregistry-bench-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
    Directory.CreateDirectory(tempRoot);
    Cleanup.Register(tempRoot);
    Benchmark.Progress($"storage under {tempRoot}");
    if (options.Storage != "filesystem")
    {
        setup.Store = await ObjectStore.StartAsync(options.Storage, Path.Combine(tempRoot, options.Storage), cancellation.Token);
        Benchmark.Progress($"ShadowRegistry's store: {setup.ShadowStorage}");
    }

    if (options.Gc) return await new GcBenchmark(options, setup, cancellation.Token).RunAsync(tempRoot);

    await ServerProcess.WarmUpReadinessPollAsync(cancellation.Token);
    var shadowFolder = Directory.CreateDirectory(Path.Combine(tempRoot, "shadow")).FullName;
    var shadow = await ServerProcess.StartAsync(Report.Shadow, shadowFolder, port => setup.ShadowStartInfo(port, Path.Combine(shadowFolder, "data")), cancellation.Token);
    Benchmark.Progress($"{Report.Shadow} pid {shadow.Pid} on {shadow.BaseAddress} (ready after {shadow.ReadyAfter.TotalMilliseconds:0} ms)");

    if (options.UiPages)
    {
        var table = await UiPagesBenchmark.RunAsync(options, shadow, cancellation.Token);
        Console.Out.Write($"### ShadowRegistry operator page — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\n- Machine: {setup.Machine}\n- {Report.Shadow}: {setup.ShadowDescription}\n\n{table}");
        return 0;
    }

    var distFolder = Directory.CreateDirectory(Path.Combine(tempRoot, "distribution")).FullName;
    var dist = await ServerProcess.StartAsync(Report.Distribution, distFolder, port => setup.DistributionStartInfo(port, distFolder), cancellation.Token);
    Benchmark.Progress($"{Report.Distribution} pid {dist.Pid} on {dist.BaseAddress} (ready after {dist.ReadyAfter.TotalMilliseconds:0} ms)");

    foreach (var server in new[] { shadow, dist })
    {
        await server.SampleIdleAsync(cancellation.Token);
    }
    foreach (var server in new[] { shadow, dist })
    {
        var client = new RegistryClient(server.BaseAddress);
        var mode = options.PushMode == PushMode.Auto ? await client.ProbeMonolithicPostAsync(cancellation.Token) : options.PushMode;
        targets.Add(new Target(server.Name, server, client, mode));
    }

    var loadBefore = LoadAverage();
    Benchmark.Progress("machine reference (SHA-256, fsync'ed write, loopback)");
    var machineReference = await MachineReference.MeasureAsync(tempRoot, cancellation.Token);
    var benchmark = new Benchmark(options, targets, cancellation.Token) { Setup = setup, TempRoot = tempRoot };
    var total = Stopwatch.StartNew();
    await benchmark.RunAsync();
    total.Stop();

    string PushText(Target t) => t.PushMode == PushMode.Post ? "POST ?digest=" : "POST + PUT ?digest=";
    var header = new List<string>
    {
        $"### ShadowRegistry vs CNCF distribution — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC",
        "",
        $"- Machine: {setup.Machine}",
        $"- {Report.Shadow}: {setup.ShadowDescription}, {setup.ShadowStorage}; blob push as {PushText(targets[0])}",
        $"- {Report.Distribution}: {setup.DistributionVersion}, filesystem driver, in-memory blob descriptor cache (as in Debian's stock config), delete enabled, log level error; blob push as {PushText(targets[1])}" +
            (targets[1].PushMode == PushMode.PostPut && options.PushMode == PushMode.Auto ? " (it answers POST ?digest= with 202, i.e. has no monolithic POST)" : ""),
        $"- {options.Describe()}",
        $"- Machine reference, measured at the start of this run: {machineReference}",
        $"- Load average (1, 5, 15 min) at the start {loadBefore}, at the end {LoadAverage()}",
        string.Create(CultureInfo.InvariantCulture, $"- Total benchmark time {total.Elapsed.TotalSeconds:0} s (after start-up); both servers run all the time, scenarios alternate which goes first."),
    };
    var notes = new List<string>
    {
        "Ops = operations attempted; ops/s, MiB/s and latencies count successful operations only (wall time of the whole scenario). " +
        "An operation is a whole blob upload (all its requests), one manifest request or one blob download (body read and digest checked). " +
        "Peak RSS = VmHWM of the server process during the scenario (reset through /proc/PID/clear_refs before it; * = since start, where the kernel refused); " +
        "RSS after = VmRSS at the end; CPU s = server utime+stime during the scenario; the start rows show totals since start: 0a the ready time in place of the scenario time (s) and " +
        "the idle server's memory and CPU before any request but the readiness probes, 0b the same after the untimed warm-up. " +
        "ops/s vs dist = ShadowRegistry ÷ distribution (> 1 is faster); in brackets, for 6v (ShadowRegistry only: distribution has no change views), " +
        "ShadowRegistry's ops/s through the view ÷ its own ops/s in 6 of this run. Viol = correctness violations (wrong bytes or digests, missing tags, " +
        "or in (3) a HEAD after the push that is not 200 with the full length).",
        string.Create(CultureInfo.InvariantCulture,
            $"Start-up (row 0a): ready after {Report.Shadow} {shadow.ReadyAfter.TotalMilliseconds:0} ms, {Report.Distribution} {dist.ReadyAfter.TotalMilliseconds:0} ms " +
            $"(process start to the first 200 from GET /v2/); idle RSS {ServerProcess.IdleSettle.TotalSeconds:0} s after ready, before the warm-up: " +
            $"{Report.Shadow} {shadow.IdleSample!.Value.RssKiB / 1024.0:0} MiB, {Report.Distribution} {dist.IdleSample!.Value.RssKiB / 1024.0:0} MiB. " +
            $"The client (this program, generating and hashing all data, and the tools it ran) used {ClientCpu.Seconds():0.0} s CPU on the same {Environment.ProcessorCount} cores; ") +
            "\"client CPU s\" gives its share per scenario, \"CPU s/GiB\" the server's CPU per GiB moved.",
    };
    notes.AddRange(benchmark.ExtraNotes);
    Console.Out.Write(Report.Render(benchmark.Rows, header, notes, out var violations));
    Console.Out.Flush();
    return violations > 0 ? 1 : 0;
}
catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted");
    return 130;
}
catch (Exception e) when (e is InvalidOperationException or BenchmarkRequestException or FileNotFoundException or IOException)
{
    Console.Error.WriteLine($"benchmark failed: {e.Message}");
    return 2;
}
finally
{
    foreach (var target in targets) target.Dispose();
    Cleanup.RunAll();
}

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
