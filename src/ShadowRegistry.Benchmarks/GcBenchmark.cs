using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace ShadowRegistry.Benchmarks;

/// <summary>
/// The optional garbage collection scenario (`--gc`, ShadowRegistry only; docs/benchmark.md): a store of
/// <c>--gc-manifests</c> tagged images whose blobs (configs, layers and the manifests themselves) number
/// <c>--gc-blobs</c>, a tenth of whose tags are then deleted (their images become garbage); then pushes alone, then
/// `ShadowRegistry gc` (a second process over the same storage root, as an operator runs it) while the same pushes go
/// on, then a collection with nothing left to sweep. Every push HEADs its blobs first, as clients do.
/// </summary>
public sealed class GcBenchmark(BenchmarkOptions options, Setup setup, CancellationToken cancellationToken)
{
    private const int Repositories = 100;
    private const int LayerBytes = 256;

    /// <summary>Short, so that the setup's garbage is old enough after a short wait; long next to one push.</summary>
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(20);

    private static readonly string[] GcArguments =
    [
        "--Registry:Gc:Enabled", "false", // collections are started by the benchmark only
        "--Registry:Gc:GracePeriod", "00:00:20",
        "--Registry:Gc:UntaggedAfter", "00:00:01",
    ];

    private readonly List<string> lines = [];

    public async Task<int> RunAsync(string tempRoot)
    {
        var data = Path.Combine(tempRoot, "gc-data");
        var layersPerImage = Math.Max(1, options.GcBlobs / options.GcManifests - 2);
        var server = await ServerProcess.StartAsync(Report.Shadow, Directory.CreateDirectory(Path.Combine(tempRoot, "gc")).FullName, port =>
        {
            var startInfo = setup.ShadowStartInfo(port, data);
            foreach (var arg in GcArguments) startInfo.ArgumentList.Add(arg);
            return startInfo;
        }, cancellationToken);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 256 }) { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

        // Set-up: not measured.
        var setupTime = Stopwatch.StartNew();
        var done = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, options.GcManifests), Degree(16), async (i, ct) =>
        {
            await PushImageAsync(http, $"gcbench/r{i % Repositories:D3}", $"t{i}", $"setup-{i}", layersPerImage, headFirst: false, ct);
            if (Interlocked.Increment(ref done) % 1000 == 0) Benchmark.Progress($"gc set-up: {done}/{options.GcManifests} images pushed");
        });
        var garbage = options.GcManifests / 10;
        await Parallel.ForEachAsync(Enumerable.Range(0, garbage), Degree(16), async (g, ct) =>
        {
            var i = g * 10;
            using var response = await http.DeleteAsync($"v2/gcbench/r{i % Repositories:D3}/manifests/t{i}", ct);
            if (response.StatusCode != HttpStatusCode.Accepted) throw new BenchmarkRequestException($"DELETE tag t{i}: {(int)response.StatusCode}");
        });
        var blobs = CountBlobs(data);
        Benchmark.Progress($"gc set-up: {blobs} blobs, {options.GcManifests} manifests, {garbage} tags deleted, in {setupTime.Elapsed.TotalSeconds:0} s; waiting out the grace period");
        await Task.Delay(Grace + TimeSpan.FromSeconds(2), cancellationToken);

        // Pushes alone, then the same pushes while a collection runs.
        var baseline = await PushesAsync(http, server, "alone", stopWhen: null, cancellationToken);
        var gcRun = StartCollection(data);
        var during = await PushesAsync(http, server, "during", stopWhen: gcRun.Exited, cancellationToken);
        var (gcSeconds, gcOutput) = await gcRun.Result;
        var (idleSeconds, idleOutput) = await StartCollection(data).Result;
        var after = CountBlobs(data);

        var ratio = during.PerSecond / baseline.PerSecond;
        lines.Add($"### Garbage collection — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        lines.Add("");
        lines.Add($"- Machine: {setup.Machine}; load average before the runs: {LoadAverage()}");
        lines.Add($"- {Report.Shadow}: {setup.ShadowDescription}; filesystem driver; grace period {Grace.TotalSeconds:0} s for the benchmark (default 2 h)");
        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"- Store: {blobs} blobs, {options.GcManifests} tagged images ({layersPerImage} layers of {LayerBytes} B, a config, the manifest) in {Repositories} repositories; " +
            $"{garbage} tags deleted (their {garbage * (layersPerImage + 2)} blobs are garbage); set-up {setupTime.Elapsed.TotalSeconds:0} s"));
        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"- Pushes: an image of a config and 2 layers of {LayerBytes} B (each blob HEADed first, then uploaded) and its manifest, @{options.GcConcurrency}"));
        lines.Add("");
        lines.Add("| Run | Time (s) | Result |");
        lines.Add("| --- | ---: | --- |");
        lines.Add(string.Create(CultureInfo.InvariantCulture, $"| `ShadowRegistry gc` while pushing | {gcSeconds:0.0} | {gcOutput} |"));
        lines.Add(string.Create(CultureInfo.InvariantCulture, $"| `ShadowRegistry gc` again, nothing to sweep, no pushes | {idleSeconds:0.0} | {idleOutput} |"));
        lines.Add("");
        lines.Add("| Pushes | Pushes | Time (s) | pushes/s | server CPU ms/push | MANIFEST_BLOB_UNKNOWN retries | Errors |");
        lines.Add("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in new[] { baseline, during })
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {row.Name} | {row.Count} | {row.Seconds:0.0} | {row.PerSecond:0.0} | {row.CpuMsPerPush:0.00} | {row.Retries} | {row.Errors} |"));
        lines.Add("");
        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"Pushes during the collection ran at {ratio:0.00}× their rate alone (target ≥ 0.8×); the collection took {gcSeconds:0.0} s (target < 60 s). " +
            $"Blobs on disk: {blobs} before, {after} after (the pushes added {(baseline.Count + during.Count) * 4})."));
        Console.Out.WriteLine(string.Join('\n', lines));
        return during.Errors + baseline.Errors > 0 ? 1 : 0;
    }

    private sealed record PushRow(string Name, int Count, double Seconds, double CpuMsPerPush, int Retries, int Errors)
    {
        public double PerSecond => Count / Seconds;
    }

    /// <summary>
    /// <c>--gc-pushes</c> pushes alone; or, with <paramref name="stopWhen"/>, pushes until it completes (at least one
    /// round of the concurrency, at most ten times the count).
    /// </summary>
    private async Task<PushRow> PushesAsync(HttpClient http, ServerProcess server, string name, Task? stopWhen, CancellationToken cancellationToken)
    {
        var started = Stopwatch.StartNew();
        var cpu = server.Sample().CpuSeconds;
        var next = -1;
        int count = 0, retries = 0, errors = 0;
        var limit = stopWhen is null ? options.GcPushes : options.GcPushes * 10;
        var round = name == "alone" ? 0 : 1;
        await Task.WhenAll(Enumerable.Range(0, options.GcConcurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                if (i >= limit || (stopWhen is { IsCompleted: true } && i >= options.GcConcurrency)) return;
                for (var attempt = 0; ; attempt++)
                {
                    var outcome = await PushImageAsync(http, $"gcbench/live{i % 10}", $"{name}-{i}", $"{name}-{round}-{i}", layers: 2, headFirst: true, cancellationToken);
                    if (outcome is null)
                    {
                        Interlocked.Increment(ref count);
                        break;
                    }
                    if (outcome == "MANIFEST_BLOB_UNKNOWN" && attempt < 5)
                    {
                        Interlocked.Increment(ref retries);
                        continue;
                    }
                    Interlocked.Increment(ref errors);
                    Benchmark.Progress($"push failed: {outcome}");
                    break;
                }
            }
        }, cancellationToken)));
        var seconds = started.Elapsed.TotalSeconds;
        var cpuMs = (server.Sample().CpuSeconds - cpu) * 1000 / Math.Max(1, count);
        Benchmark.Progress(string.Create(CultureInfo.InvariantCulture, $"gc pushes {name}: {count} in {seconds:0.0} s, {cpuMs:0.00} server CPU ms each"));
        return new PushRow(name == "alone" ? "alone" : "during `ShadowRegistry gc`", count, seconds, cpuMs, retries, errors);
    }

    /// <summary>Pushes an image of small unique blobs; null when it worked, else the error code or status.</summary>
    private static async Task<string?> PushImageAsync(HttpClient http, string repository, string tag, string seed, int layers, bool headFirst, CancellationToken cancellationToken)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        var blobs = new List<byte[]> { config };
        for (var l = 0; l < layers; l++)
        {
            var layer = new byte[LayerBytes];
            BlobData.Fill(BlobData.Mix((ulong)seed.GetHashCode(StringComparison.Ordinal), l), 0, layer);
            Encoding.ASCII.GetBytes($"{seed}/{l}").CopyTo(layer, 0); // unique whatever the hash
            blobs.Add(layer);
        }
        var digests = new List<string>();
        foreach (var blob in blobs)
        {
            var digest = BlobData.DigestOf(blob);
            digests.Add(digest);
            if (headFirst)
            {
                using var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}"), cancellationToken);
                if (head.StatusCode == HttpStatusCode.OK) continue;
            }
            using var post = await http.PostAsync($"v2/{repository}/blobs/uploads/?digest={digest}", new ByteArrayContent(blob), cancellationToken);
            if (post.StatusCode != HttpStatusCode.Created) return $"POST blob: {(int)post.StatusCode}";
        }
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteNumber("schemaVersion", 2);
            writer.WriteString("mediaType", RegistryClient.ManifestMediaType);
            Descriptor(writer, "config", RegistryClient.ConfigMediaType, digests[0], blobs[0].Length);
            writer.WriteStartArray("layers");
            for (var l = 1; l < blobs.Count; l++) Descriptor(writer, null, RegistryClient.LayerMediaType, digests[l], blobs[l].Length);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        var content = new ByteArrayContent(stream.ToArray());
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(RegistryClient.ManifestMediaType);
        using var put = await http.PutAsync($"v2/{repository}/manifests/{tag}", content, cancellationToken);
        if (put.StatusCode == HttpStatusCode.Created) return null;
        var body = await put.Content.ReadAsStringAsync(cancellationToken);
        return body.Contains("MANIFEST_BLOB_UNKNOWN", StringComparison.Ordinal) ? "MANIFEST_BLOB_UNKNOWN" : $"PUT manifest: {(int)put.StatusCode} {body}";
    }

    private static void Descriptor(Utf8JsonWriter writer, string? name, string mediaType, string digest, long size)
    {
        if (name is null) writer.WriteStartObject();
        else writer.WriteStartObject(name);
        writer.WriteString("mediaType", mediaType);
        writer.WriteString("digest", digest);
        writer.WriteNumber("size", size);
        writer.WriteEndObject();
    }

    private sealed record Collection(Task Exited, Task<(double Seconds, string Output)> Result);

    /// <summary>`ShadowRegistry gc` over the storage root, as a process of its own; its last output line is the summary.</summary>
    private Collection StartCollection(string data)
    {
        var startInfo = new ProcessStartInfo(setup.Dotnet) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { setup.ShadowDll, "gc", "--data", data, "--Serilog:MinimumLevel:Default", "Warning" }.Concat(GcArguments))
            startInfo.ArgumentList.Add(arg);
        var watch = Stopwatch.StartNew();
        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start ShadowRegistry gc");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        var exited = process.WaitForExitAsync(cancellationToken);
        async Task<(double, string)> ResultAsync()
        {
            await exited;
            var seconds = watch.Elapsed.TotalSeconds;
            var lines = (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (process.ExitCode != 0) throw new InvalidOperationException($"ShadowRegistry gc exited with {process.ExitCode}: {await error}");
            var summary = lines.Where(l => !l.StartsWith("removed ", StringComparison.Ordinal) && !l.StartsWith("would ", StringComparison.Ordinal)
                                           && !l.StartsWith('[')).ToList();
            Benchmark.Progress($"gc run: {seconds:0.0} s: {string.Join("; ", summary)}");
            return (seconds, string.Join("; ", summary.Where(l => l.StartsWith("blobs:", StringComparison.Ordinal) || l.StartsWith("manifests:", StringComparison.Ordinal) || l.StartsWith("freed", StringComparison.Ordinal))));
        }
        return new Collection(exited, ResultAsync());
    }

    private static int CountBlobs(string data) =>
        Directory.Exists(Path.Combine(data, "blobs")) ? Directory.EnumerateFiles(Path.Combine(data, "blobs"), "*", SearchOption.AllDirectories).Count(f => !Path.GetFileName(f).StartsWith('.')) : 0;

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    private ParallelOptions Degree(int degree) => new() { MaxDegreeOfParallelism = degree, CancellationToken = cancellationToken };
}
