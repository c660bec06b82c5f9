using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ShadowRegistry.Benchmarks;

/// <summary>
/// The scenarios of issue 13: manifest HEADs at many connections, single large streams (HTTP client and skopeo), and
/// pull-through beside a direct pull of the upstream and distribution's own proxy mode.
/// </summary>
public sealed partial class Benchmark
{
    /// <summary>What the extra scenarios need to start servers of their own; set by Program.</summary>
    public Setup? Setup { get; init; }

    public string? TempRoot { get; init; }

    /// <summary>Lines for under the table: comparisons the table's ratio column cannot show.</summary>
    public List<string> ExtraNotes { get; } = [];

    /// <summary>(7) Manifest HEAD by tag at many connections: the digest header must be the pushed manifest's.</summary>
    private Task ManifestHeadsAsync() =>
        ForEachTarget(7, $"7 manifest HEAD by tag ×{options.ManifestHeads} @{options.HeadConcurrency}", false, (t, rec) =>
            OverTagsAsync(t, rec, options.ManifestHeads, options.HeadConcurrency, "HEAD", (repository, tag, digest, ct) =>
                t.Client.HeadManifestAsync(PushRepository(repository), tag, digest, ct)));

    /// <summary>
    /// (8) Single streams, one at a time: monolithic push, chunked push and pull of one large blob, each blob new, for
    /// each size of --large-mib.
    /// </summary>
    private async Task LargeStreamsAsync()
    {
        foreach (var mib in options.LargeMiB)
        {
            var size = mib * BenchmarkOptions.MiB;
            var label = mib >= 1024 && mib % 1024 == 0 ? $"{mib / 1024} GiB" : $"{mib} MiB";
            var blobs = Enumerable.Range(0, options.LargeRepeat).Select(r => new BlobSpec(BlobSpec.SeedFor(8, mib * 100 + r), size)).ToArray();
            var chunked = Enumerable.Range(0, options.LargeRepeat).Select(r => new BlobSpec(BlobSpec.SeedFor(8, mib * 100 + 50 + r), size)).ToArray();
            Progress($"computing digests of the {label} blobs");
            Parallel.ForEach(blobs.Concat(chunked), b => _ = b.Digest);
            await ForEachTarget(8, $"8 push 1×{label} @1 (×{options.LargeRepeat})", true, (t, rec) =>
                rec.RunAsync(options.LargeRepeat, 1, async (i, ct) =>
                {
                    await t.Client.PushBlobAsync($"bench/large-{mib}-{i}", blobs[i], t.PushMode, ct);
                    return size;
                }, cancellationToken));
            await ForEachTarget(9, $"8 chunked push 1×{label} ({options.LargeChunkMiB} MiB PATCH) @1 (×{options.LargeRepeat})", true, (t, rec) =>
                rec.RunAsync(options.LargeRepeat, 1, async (i, ct) =>
                {
                    await t.Client.PushBlobChunkedAsync($"bench/large-chunked-{mib}-{i}", chunked[i], options.LargeChunkMiB * BenchmarkOptions.MiB, ct);
                    return size;
                }, cancellationToken));
            await ForEachTarget(8, $"8 pull 1×{label} @1 (×{options.LargeRepeat})", true, (t, rec) =>
                rec.RunAsync(options.LargeRepeat, 1, (i, ct) => t.Client.PullBlobAsync($"bench/large-{mib}-{i}", blobs[i], ct), cancellationToken));
        }
    }

    /// <summary>(9) skopeo copy of a one-layer image to and from each server, when skopeo is installed.</summary>
    private async Task SkopeoAsync()
    {
        if (Setup?.Skopeo is not { } skopeo || TempRoot is null)
        {
            ExtraNotes.Add("(9) skopeo scenarios skipped: skopeo is not on PATH.");
            return;
        }
        var root = Directory.CreateDirectory(Path.Combine(TempRoot, "skopeo")).FullName;
        var policy = Path.Combine(root, "policy.json");
        File.WriteAllText(policy, """{"default":[{"type":"insecureAcceptAnything"}]}""");
        var tmp = Directory.CreateDirectory(Path.Combine(root, "tmp")).FullName;
        foreach (var mib in options.LargeMiB)
        {
            var label = mib >= 1024 && mib % 1024 == 0 ? $"{mib / 1024} GiB" : $"{mib} MiB";
            var layer = new BlobSpec(BlobSpec.SeedFor(9, mib), mib * BenchmarkOptions.MiB);
            var layout = Path.Combine(root, $"image-{mib}");
            Progress($"writing the {label} image for skopeo");
            var (layerDigest, layerLength) = OciLayout.Write(layout, layer, "v1");
            string[] Base() => ["--policy", policy, "--tmpdir", tmp];
            await ForEachTarget(9, $"9 skopeo push {label} layer (×{options.LargeRepeat})", true, (t, rec) =>
                rec.RunAsync(options.LargeRepeat, 1, async (i, ct) =>
                {
                    await RunToolAsync(skopeo, [.. Base(), "copy", "--dest-tls-verify=false", $"oci:{layout}:v1",
                        $"docker://{t.Server.BaseAddress.Authority}/bench/skopeo-{mib}-{i}:v1"], ct);
                    return layerLength;
                }, cancellationToken));
            await ForEachTarget(10, $"9 skopeo pull {label} layer (×{options.LargeRepeat})", true, (t, rec) =>
                rec.RunAsync(options.LargeRepeat, 1, async (i, ct) =>
                {
                    var destination = Path.Combine(root, $"pulled-{t.Server.Pid}-{mib}-{i}");
                    try
                    {
                        await RunToolAsync(skopeo, [.. Base(), "copy", "--src-tls-verify=false",
                            $"docker://{t.Server.BaseAddress.Authority}/bench/skopeo-{mib}-{i}:v1", $"dir:{destination}"], ct);
                        // skopeo verified the digest as it pulled; the layer must be there, whole.
                        var pulled = Path.Combine(destination, layerDigest["sha256:".Length..]);
                        if (!File.Exists(pulled) || new FileInfo(pulled).Length != layerLength)
                            throw new CorrectnessViolationException($"skopeo pulled no {layerLength}-byte layer {layerDigest}");
                        return layerLength;
                    }
                    finally
                    {
                        if (Directory.Exists(destination)) Directory.Delete(destination, recursive: true);
                    }
                }, cancellationToken));
            Directory.Delete(layout, recursive: true);
        }
    }

    /// <summary>
    /// (10) Pull-through: an image with one large layer in a second distribution (the upstream), pulled (manifest,
    /// config, layer) directly from it and through each proxy: ShadowRegistry without and with blob caching and
    /// distribution in proxy mode, each a fresh server. First pull (cold) then second pull (warm), each right after a
    /// direct pull of the upstream, which its ratio is taken against.
    /// </summary>
    private async Task PullThroughAsync()
    {
        if (Setup is null || TempRoot is null) return;
        var mib = options.PullThroughMiB;
        var label = $"{mib} MiB";
        var folder = Directory.CreateDirectory(Path.Combine(TempRoot, "pull-through")).FullName;
        ServerProcess Start(string name, Func<int, string, ProcessStartInfo> info)
        {
            var dir = Directory.CreateDirectory(Path.Combine(folder, name.Replace(' ', '-').Replace(",", ""))).FullName;
            return ServerProcess.StartAsync(name, dir, port => info(port, dir), cancellationToken).GetAwaiter().GetResult();
        }
        var upstream = Start("upstream", (port, dir) => Setup.DistributionStartInfo(port, dir));
        using var upstreamClient = new RegistryClient(upstream.BaseAddress);
        var layer = new BlobSpec(BlobSpec.SeedFor(10, mib), mib * BenchmarkOptions.MiB);
        const string repository = "bench/pull-through";
        Progress($"pushing the {label} image to the upstream");
        var configDigest = BlobData.DigestOf(RegistryClient.ConfigBlob);
        await upstreamClient.PushBlobAsync(repository, layer, PushMode.PostPut, cancellationToken);
        await upstreamClient.PushSmallBlobAsync(repository, RegistryClient.ConfigBlob, configDigest, PushMode.PostPut, cancellationToken);
        var manifest = RegistryClient.BuildManifest(configDigest, RegistryClient.ConfigBlob.Length, layer, 0);
        var manifestDigest = BlobData.DigestOf(manifest);
        await upstreamClient.PutManifestAsync(repository, "v1", manifest, manifestDigest, cancellationToken);

        var upstreamUrl = upstream.BaseAddress.ToString().TrimEnd('/');
        string[] shadowArgs = ["--Shadow:Upstreams:up:Url", upstreamUrl, "--Shadow:Upstreams:up:Default", "true"];
        var proxies = new (string Name, Func<int, string, ProcessStartInfo> Info)[]
        {
            ($"{Report.Shadow}, no blob cache", (port, dir) => Setup.ShadowStartInfo(port, Path.Combine(dir, "data"), shadowArgs)),
            ($"{Report.Shadow}, blob cache", (port, dir) => Setup.ShadowStartInfo(port, Path.Combine(dir, "data"), [.. shadowArgs, "--Shadow:CacheBlobs", "true"])),
            ($"{Report.Distribution} proxy", (port, dir) => Setup.DistributionStartInfo(port, dir, proxyRemoteUrl: upstreamUrl)),
        };

        async Task<long> PullAsync(RegistryClient client, CancellationToken ct)
        {
            await client.GetManifestAsync(repository, "v1", manifestDigest, ct);
            await client.PullBlobAsync(repository, ConfigSpec(configDigest), ct);
            return await client.PullBlobAsync(repository, layer, ct);
        }

        // A first direct pull, untimed: the upstream's files are then in the page cache for every timed pull.
        await PullAsync(upstreamClient, cancellationToken);
        foreach (var (name, info) in proxies)
        {
            var proxy = Start(name, info);
            using var proxyClient = new RegistryClient(proxy.BaseAddress);
            try
            {
                // The proxy's own warm-up: a manifest and a small blob through it (JIT, connections), not the layer.
                await proxyClient.GetManifestAsync(repository, "v1", manifestDigest, cancellationToken);
                foreach (var pass in new[] { "first pull (cold)", "second pull (warm)" })
                {
                    var scenario = $"10 pull-through {label} image, {pass}";
                    var direct = await MeasureAsync(scenario, "direct from upstream", upstream, true, rec =>
                        rec.RunOneAsync(() => PullAsync(upstreamClient, cancellationToken), cancellationToken));
                    var upstreamBefore = upstream.Sample();
                    var machineBefore = MachineCpu.BusySeconds();
                    var through = await MeasureAsync(scenario, name, proxy, true, rec =>
                        rec.RunOneAsync(() => PullAsync(proxyClient, cancellationToken), cancellationToken));
                    var machineBusy = MachineCpu.BusySeconds() - machineBefore;
                    var upstreamCpu = upstream.Sample().CpuSeconds - upstreamBefore.CpuSeconds;
                    if (direct.Seconds > 0 && through.Latencies.Length > 0 && direct.Latencies.Length > 0)
                    {
                        // Client, proxy and upstream share the machine's cores: CPU summed against wall time × cores
                        // says whether the pull was bound by CPU rather than by waiting.
                        var cores = Environment.ProcessorCount;
                        var sum = through.CpuSeconds + upstreamCpu + (through.ClientCpuSeconds ?? 0);
                        var directSum = direct.CpuSeconds + (direct.ClientCpuSeconds ?? 0);
                        ExtraNotes.Add(string.Create(CultureInfo.InvariantCulture,
                            $"(10) {name}, {pass}: {through.Seconds:0.00} s vs {direct.Seconds:0.00} s pulling the upstream directly just before = " +
                            $"{(through.Seconds / direct.Seconds - 1) * 100:+0;-0} % time; proxy CPU {through.CpuSeconds:0.00} s, upstream " +
                            $"{upstreamCpu:0.00} s, client {through.ClientCpuSeconds ?? 0:0.00} s: {sum:0.00} s of the {through.Seconds * cores:0.00} s " +
                            $"that {cores} cores give in that time ({sum / (through.Seconds * cores) * 100:0} %); direct: upstream {direct.CpuSeconds:0.00} s + " +
                            $"client {direct.ClientCpuSeconds ?? 0:0.00} s = {directSum:0.00} s of {direct.Seconds * cores:0.00} s ({directSum / (direct.Seconds * cores) * 100:0} %). " +
                            $"The machine was busy {machineBusy:0.00} s during the pull through the proxy, other processes {Math.Max(0, machineBusy - sum):0.00} s of it."));
                    }
                }
            }
            finally
            {
                proxy.Stop();
            }
        }
        upstream.Stop();
    }

    private static BlobSpec ConfigSpec(string digest) => new ConfigBlobSpec(digest);

    /// <summary>The fixed config blob as a <see cref="BlobSpec"/> whose digest is known (its bytes are not generated).</summary>
    private sealed class ConfigBlobSpec(string digest) : BlobSpec(0, RegistryClient.ConfigBlob.Length)
    {
        public override string Digest => digest;
    }

    /// <summary>A row for one measured piece of work against one server process (not necessarily a target).</summary>
    private async Task<Row> MeasureAsync(string scenario, string serverName, ServerProcess server, bool hasBytes, Func<Recorder, Task> body,
        string? baseScenario = null)
    {
        Native.Sync();
        var reset = server.ResetPeakRss();
        var before = server.Sample();
        var clientBefore = ClientCpu.Seconds();
        var recorder = new Recorder();
        Progress($"[{serverName}] {scenario} …");
        var watch = Stopwatch.StartNew();
        await body(recorder);
        watch.Stop();
        var clientCpu = ClientCpu.Seconds() - clientBefore;
        string? note = null;
        var after = before;
        if (server.HasExited)
        {
            note = "server exited during the scenario";
            Progress($"[{serverName}] EXITED:\n{server.Log}");
        }
        else
        {
            after = server.Sample();
        }
        var row = new Row
        {
            Scenario = scenario,
            Server = serverName,
            HasBytes = hasBytes,
            Ops = recorder.Ops,
            Errors = recorder.Errors,
            Violations = recorder.Violations,
            Bytes = recorder.Bytes,
            Seconds = watch.Elapsed.TotalSeconds,
            Latencies = recorder.SortedLatencies(),
            PeakRssKiB = after.PeakRssKiB,
            RssKiB = after.RssKiB,
            CpuSeconds = after.CpuSeconds - before.CpuSeconds,
            ClientCpuSeconds = clientCpu,
            PeakSinceStart = !reset,
            Note = note,
            Samples = recorder.Samples,
            BaseScenario = baseScenario,
        };
        rows.Add(row);
        Progress(string.Create(CultureInfo.InvariantCulture,
            $"[{serverName}]   {row.Seconds:0.00} s, {row.OpsPerSecond:0.#} ops/s, errors {row.Errors}, violations {row.Violations}, " +
            $"peak RSS {row.PeakRssKiB / 1024.0:0} MiB, server CPU {row.CpuSeconds:0.00} s, client CPU {clientCpu:0.00} s"));
        return row;
    }

    /// <summary>Runs a tool to completion (bounded to 10 minutes); a non-zero exit is an error with its last output.</summary>
    private static async Task RunToolAsync(string file, string[] args, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) startInfo.ArgumentList.Add(arg);
        using var process = Process.Start(startInfo) ?? throw new BenchmarkRequestException($"{file} did not start");
        Cleanup.Register(process);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(10));
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Cleanup.Kill(process);
            throw new BenchmarkRequestException($"{Path.GetFileName(file)} {args[^3]} timed out");
        }
        if (process.ExitCode != 0)
        {
            var text = (await error + await output).Trim();
            if (text.Length > 300) text = "…" + text[^300..];
            throw new BenchmarkRequestException($"{Path.GetFileName(file)} exited with {process.ExitCode}: {text}");
        }
    }
}

/// <summary>A one-image OCI layout on disk, as skopeo's oci: transport reads it: a layer of generated bytes, uncompressed.</summary>
public static class OciLayout
{
    /// <summary>
    /// Writes the layout and returns the layer's digest and size. The layer is <paramref name="content"/> in a gzip
    /// stream of stored (uncompressed) blocks: skopeo compresses a layer it finds uncompressed before pushing it to a
    /// registry, which would measure gzip; a layer that is gzip already is pushed as it is, and is barely larger.
    /// </summary>
    public static (string Digest, long Length) Write(string root, BlobSpec content, string tag)
    {
        var blobs = Directory.CreateDirectory(Path.Combine(root, "blobs", "sha256")).FullName;
        File.WriteAllText(Path.Combine(root, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        var layerPath = Path.Combine(blobs, "layer.tmp");
        using (var file = new FileStream(layerPath, FileMode.Create, FileAccess.Write, FileShare.None, 1024 * 1024))
        using (var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.NoCompression))
        {
            var buffer = new byte[BlobData.BufferSize];
            for (long position = 0; position < content.Length;)
            {
                var n = (int)Math.Min(buffer.Length, content.Length - position);
                BlobData.Fill(content.Seed, position, buffer.AsSpan(0, n));
                gzip.Write(buffer, 0, n);
                position += n;
            }
        }
        string layerDigest;
        using (var file = File.OpenRead(layerPath)) layerDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(file));
        var layerLength = new FileInfo(layerPath).Length;
        File.Move(layerPath, Path.Combine(blobs, layerDigest["sha256:".Length..]));
        var config = Encoding.UTF8.GetBytes(
            """{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[""" + "\"" + content.Digest + "\"" + """]},"config":{}}""");
        var configDigest = BlobData.DigestOf(config);
        File.WriteAllBytes(Path.Combine(blobs, configDigest["sha256:".Length..]), config);
        var manifest = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = RegistryClient.ManifestMediaType,
            ["config"] = new Dictionary<string, object> { ["mediaType"] = RegistryClient.ConfigMediaType, ["digest"] = configDigest, ["size"] = config.Length },
            ["layers"] = new[] { new Dictionary<string, object> { ["mediaType"] = RegistryClient.LayerMediaType + "+gzip", ["digest"] = layerDigest, ["size"] = layerLength } },
        });
        var manifestDigest = BlobData.DigestOf(manifest);
        File.WriteAllBytes(Path.Combine(blobs, manifestDigest["sha256:".Length..]), manifest);
        File.WriteAllBytes(Path.Combine(root, "index.json"), JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["schemaVersion"] = 2,
            ["manifests"] = new[]
            {
                new Dictionary<string, object>
                {
                    ["mediaType"] = RegistryClient.ManifestMediaType, ["digest"] = manifestDigest, ["size"] = manifest.Length,
                    ["annotations"] = new Dictionary<string, string> { ["org.opencontainers.image.ref.name"] = tag },
                },
            },
        }));
        return (layerDigest, layerLength);
    }
}

/// <summary>CPU time the whole machine spent busy (every process, the kernel included), from /proc/stat; 0 where it is missing.</summary>
public static class MachineCpu
{
    public static double BusySeconds()
    {
        try
        {
            // "cpu  user nice system idle iowait irq softirq steal ...", in clock ticks (100 a second on Linux).
            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
                .Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
            return (fields.Take(8).Sum() - fields[3] - fields[4]) / 100.0;
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return 0;
        }
    }
}

/// <summary>CPU the client side used: this process and every child it waited for (skopeo).</summary>
public static class ClientCpu
{
    private const int RusageChildren = -1;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeVal
    {
        public long Seconds;
        public long Microseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Rusage
    {
        public TimeVal User;
        public TimeVal System;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 14)]
        public long[] Rest;
    }

    [DllImport("libc", EntryPoint = "getrusage")]
    private static extern int GetRusage(int who, ref Rusage usage);

    public static double Seconds()
    {
        var own = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var usage = new Rusage { Rest = new long[14] };
        if (GetRusage(RusageChildren, ref usage) != 0) return own;
        return own + usage.User.Seconds + usage.User.Microseconds / 1e6 + usage.System.Seconds + usage.System.Microseconds / 1e6;
    }
}

/// <summary>
/// What this machine does at most, so each figure can be read as a fraction of it: SHA-256 on one core (the runtime's,
/// as both the registry and the client use), a write of 256 MiB followed by fsync, and one TCP stream over loopback.
/// </summary>
public static class MachineReference
{
    public static async Task<string> MeasureAsync(string folder, CancellationToken cancellationToken)
    {
        const int size = 256 * 1024 * 1024;
        var buffer = new byte[4 * 1024 * 1024];
        BlobData.Fill(1, 0, buffer);

        // CPU time as well as wall time: on a loaded machine the wall time says more about the load than about the CPU,
        // and the CPU seconds per GiB compare directly with the table's server CPU per GiB.
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        for (var done = 0; done < size; done += buffer.Length) hash.AppendData(buffer);
        hash.GetHashAndReset();
        var sha = size / watch.Elapsed.TotalSeconds;
        var shaCpuPerGiB = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds * (1024.0 * 1024 * 1024 / size);

        var path = Path.Combine(folder, "machine-reference.bin");
        watch.Restart();
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
        {
            for (var done = 0; done < size; done += buffer.Length) await file.WriteAsync(buffer, cancellationToken);
            file.Flush(flushToDisk: true);
        }
        var fsynced = size / watch.Elapsed.TotalSeconds;
        File.Delete(path);

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        const long loopbackBytes = 1024L * 1024 * 1024;
        var receiver = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync(cancellationToken);
            var into = new byte[1024 * 1024];
            long received = 0;
            int n;
            while ((n = await socket.ReceiveAsync(into, cancellationToken)) > 0) received += n;
            return received;
        }, cancellationToken);
        watch.Restart();
        using (var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await sender.ConnectAsync((IPEndPoint)listener.LocalEndpoint, cancellationToken);
            for (long sent = 0; sent < loopbackBytes; sent += buffer.Length) await sender.SendAsync(buffer, cancellationToken);
            sender.Shutdown(SocketShutdown.Send);
            await receiver;
        }
        var loopback = loopbackBytes / watch.Elapsed.TotalSeconds;
        return string.Create(CultureInfo.InvariantCulture,
            $"SHA-256 (.NET, one core) {sha / 1e6:0} MB/s, {shaCpuPerGiB:0.00} CPU s/GiB; 256 MiB written and fsync'ed {fsynced / 1e6:0} MB/s; one loopback TCP stream {loopback / 1e6:0} MB/s");
    }
}
