using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace ShadowRegistry.Benchmarks;

/// <summary>Memory and CPU of a process as Linux reports them in /proc.</summary>
public readonly record struct ProcSample(long PeakRssKiB, long RssKiB, double CpuSeconds);

/// <summary>
/// A registry server run as a child process on 127.0.0.1 with its own storage folder. Registered with
/// <see cref="Cleanup"/> as soon as it starts, so it is killed (and its folder deleted) whatever happens.
/// </summary>
public sealed class ServerProcess
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly Process process;
    private readonly StringBuilder log = new();

    private ServerProcess(string name, Process process, int port, string folder)
    {
        Name = name;
        this.process = process;
        Folder = folder;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
    }

    public string Name { get; }
    public string Folder { get; }
    public Uri BaseAddress { get; }
    public int Pid => process.Id;
    public bool HasExited => process.HasExited;
    public TimeSpan ReadyAfter { get; private set; }

    /// <summary>Memory and CPU since start, <see cref="IdleSettle"/> after ready, before any request but the readiness probes.</summary>
    public ProcSample? IdleSample { get; private set; }

    /// <summary>
    /// How long after ready the idle sample is taken: long enough for the background work a server starts with (a
    /// first storage sweep, timers) to have run, so the RSS is what an idle server holds.
    /// </summary>
    public static readonly TimeSpan IdleSettle = TimeSpan.FromSeconds(1);

    private readonly Stopwatch sinceReady = new();

    /// <summary>What the server printed last (bounded), for failure messages.</summary>
    public string Log
    {
        get
        {
            lock (log)
            {
                return log.ToString();
            }
        }
    }

    /// <summary>
    /// Starts the server on a free port (the port is picked by binding port 0 and released just before the server
    /// binds it, so a start is retried on a new port if another process took it meanwhile) and waits until
    /// GET /v2/ answers 200.
    /// </summary>
    public static async Task<ServerProcess> StartAsync(string name, string folder, Func<int, ProcessStartInfo> startInfoForPort, CancellationToken cancellationToken)
    {
        Exception? last = null;
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var port = FreePort();
            var startInfo = startInfoForPort(port);
            startInfo.RedirectStandardInput = true;
            startInfo.RedirectStandardOutput = true;
            startInfo.RedirectStandardError = true;
            startInfo.UseShellExecute = false;
            startInfo.WorkingDirectory = folder;
            var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
            var server = new ServerProcess(name, process, port, folder);
            process.OutputDataReceived += (_, e) => server.Append(e.Data);
            process.ErrorDataReceived += (_, e) => server.Append(e.Data);
            var started = Stopwatch.StartNew();
            process.Start();
            Cleanup.Register(process);
            process.StandardInput.Close();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await server.WaitUntilReadyAsync(cancellationToken);
                server.ReadyAfter = started.Elapsed;
                server.sinceReady.Start();
                return server;
            }
            catch (InvalidOperationException e)
            {
                last = e;
                Cleanup.Kill(process);
                var inUse = server.Log.Contains("address already in use", StringComparison.OrdinalIgnoreCase);
                if (!inUse) break;
            }
        }
        throw new InvalidOperationException($"{name} did not start: {last?.Message}");
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (log)
        {
            // Bounded: keep the last ~64 KiB.
            if (log.Length > 64 * 1024) log.Remove(0, log.Length - 48 * 1024);
            log.AppendLine(line);
        }
    }

    private async Task WaitUntilReadyAsync(CancellationToken cancellationToken)
    {
        using var client = ReadinessClient(BaseAddress);
        var deadline = Stopwatch.StartNew();
        var last = "";
        while (deadline.Elapsed < StartTimeout)
        {
            if (process.HasExited) throw new InvalidOperationException($"exited with {process.ExitCode}:\n{Log}");
            last = await PollAsync(client, cancellationToken);
            if (last.Length == 0) return;
            // A refused connection costs well under a millisecond: polling often keeps the ready time to within a few
            // ms of the truth for both servers (at 50 ms steps it was rounded up by 25 ms on average).
            await Task.Delay(5, cancellationToken);
        }
        throw new InvalidOperationException($"GET {BaseAddress}v2/ did not answer 200 within {StartTimeout.TotalSeconds:0}s ({last}):\n{Log}");
    }

    private static HttpClient ReadinessClient(Uri baseAddress) =>
        new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(2) };

    /// <summary>One GET /v2/: empty when it answered 200, else what happened.</summary>
    private static async Task<string> PollAsync(HttpClient client, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await client.GetAsync("v2/", cancellationToken);
            return response.StatusCode == HttpStatusCode.OK ? "" : $"GET /v2/ answered {(int)response.StatusCode}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Starts a child process (true) as a server is started, and runs the readiness poll once against a closed port
    /// and once against a stand-in that answers 200, before any server starts. The first process start and the first
    /// requests of this process JIT-compile its process and HTTP client code (tens of milliseconds of CPU on 2 cores);
    /// unwarmed, that was counted in the ready time of whichever server started first (always ShadowRegistry).
    /// </summary>
    public static async Task WarmUpReadinessPollAsync(CancellationToken cancellationToken)
    {
        using (var child = new Process { StartInfo = new ProcessStartInfo("true") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false } })
        {
            child.OutputDataReceived += (_, _) => { };
            child.ErrorDataReceived += (_, _) => { };
            child.Start();
            child.StandardInput.Close();
            child.BeginOutputReadLine();
            child.BeginErrorReadLine();
            await child.WaitForExitAsync(cancellationToken);
        }
        using (var refused = ReadinessClient(new Uri($"http://127.0.0.1:{FreePort()}/"))) await PollAsync(refused, cancellationToken);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var standIn = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync(cancellationToken);
            // The request's headers arrive in one piece; the answer closes the connection.
            await socket.ReceiveAsync(new byte[8192], cancellationToken);
            await socket.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), cancellationToken);
        }, cancellationToken);
        using (var client = ReadinessClient(new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/")))
        {
            var answer = await PollAsync(client, cancellationToken);
            if (answer.Length > 0) throw new InvalidOperationException($"readiness poll warm-up: {answer}");
        }
        await standIn;
    }

    /// <summary>Kills the server before the end of the run (the servers only some scenarios start).</summary>
    public void Stop() => Cleanup.Kill(process);

    /// <summary>Resets VmHWM to the current RSS (writes 5 to /proc/PID/clear_refs); false where the kernel refuses.</summary>
    public bool ResetPeakRss()
    {
        try
        {
            File.WriteAllText($"/proc/{Pid}/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Takes <see cref="IdleSample"/> once <see cref="IdleSettle"/> has passed since ready.</summary>
    public async Task SampleIdleAsync(CancellationToken cancellationToken)
    {
        var left = IdleSettle - sinceReady.Elapsed;
        if (left > TimeSpan.Zero) await Task.Delay(left, cancellationToken);
        IdleSample = Sample();
    }

    public ProcSample Sample()
    {
        long hwm = 0, rss = 0;
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = KiB(line);
            else if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = KiB(line);
        }
        // Fields after "(comm)": state is field 3, utime 14 and stime 15 (1-based) in proc(5).
        var stat = File.ReadAllText($"/proc/{Pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return new ProcSample(hwm, rss, ticks / (double)Native.ClockTicksPerSecond);

        static long KiB(string line) =>
            long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}

internal static class Native
{
    private const int ScClkTck = 2;

    [DllImport("libc", EntryPoint = "sysconf")]
    private static extern long SysConf(int name);

    [DllImport("libc", EntryPoint = "sync")]
    private static extern void SyncNative();

    public static readonly long ClockTicksPerSecond = GetClockTicks();

    private static long GetClockTicks()
    {
        try
        {
            var ticks = SysConf(ScClkTck);
            return ticks > 0 ? ticks : 100;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return 100;
        }
    }

    /// <summary>Flushes dirty pages so one server's write-back does not land in the other server's measurement.</summary>
    public static void Sync()
    {
        try
        {
            SyncNative();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not fatal: the numbers are only a little noisier.
        }
    }
}

/// <summary>
/// Everything that must not outlive the benchmark: child processes and temp folders. <see cref="RunAll"/> is idempotent and
/// runs from the main finally block, on SIGINT/SIGTERM (second signal) and at process exit.
/// </summary>
public static class Cleanup
{
    private static readonly Lock Gate = new();
    private static readonly List<Process> Processes = [];
    private static readonly List<string> Folders = [];

    public static void Register(Process process)
    {
        lock (Gate) Processes.Add(process);
    }

    public static void Register(string folder)
    {
        lock (Gate) Folders.Add(folder);
    }

    public static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    public static void RunAll()
    {
        List<Process> processes;
        List<string> folders;
        lock (Gate)
        {
            processes = [.. Processes];
            folders = [.. Folders];
            Processes.Clear();
            Folders.Clear();
        }
        foreach (var process in processes)
        {
            Kill(process);
            process.Dispose();
        }
        foreach (var folder in folders)
        {
            for (var attempt = 0; attempt < 3; attempt++)
            {
                try
                {
                    if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
                    break;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    if (attempt == 2) Console.Error.WriteLine($"could not delete {folder}: {e.Message}");
                    Thread.Sleep(200);
                }
            }
        }
    }
}
