using System.Diagnostics;
using System.Net.Sockets;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// An object-store emulator (azurite, s3rver) from the repository's own npm install (.ci/emulators, installed by
/// .ci/run with `npm ci`), started once per test run on a free loopback port with a fresh data folder, and stopped when
/// the test process exits. Tests skip with the reason when the install is missing, except under CI=true, where they fail.
/// </summary>
public sealed class ObjectStoreEmulator : IDisposable
{
    /// <summary>Node loads azurite in ~10 s on a machine shared by several builds; far longer is still a start.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    private readonly Process process;
    private readonly string dataDirectory;

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port}";

    private ObjectStoreEmulator(Process process, int port, string dataDirectory)
    {
        this.process = process;
        Port = port;
        this.dataDirectory = dataDirectory;
    }

    /// <summary>The folder holding package.json and node_modules for the emulators, or null when not found.</summary>
    public static string? EmulatorsDirectory
    {
        get
        {
            for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            {
                var candidate = Path.Combine(directory.FullName, ".ci", "emulators");
                if (File.Exists(Path.Combine(candidate, "package.json"))) return candidate;
            }
            return null;
        }
    }

    /// <summary>Why the named emulator cannot run here, or null when it can.</summary>
    public static string? Unavailable(string binary)
    {
        var directory = EmulatorsDirectory;
        if (directory is null) return "no .ci/emulators folder above the test binaries";
        if (!File.Exists(Path.Combine(directory, "node_modules", ".bin", binary)))
            return $"{binary} is not installed: run `npm ci` in {directory} (.ci/run does)";
        return null;
    }

    /// <summary>Skips the calling test when the emulator is missing, unless under CI, where a missing emulator is a failure.</summary>
    public static void SkipUnlessAvailable(string binary)
    {
        var reason = Unavailable(binary);
        if (reason is null) return;
        if (Environment.GetEnvironmentVariable("CI") == "true") throw new InvalidOperationException($"CI=true but {reason}");
        Skip.If(true, reason);
    }

    /// <summary>Starts the binary with the arguments (given the port and a data folder) and waits until it accepts connections.</summary>
    public static ObjectStoreEmulator Start(string binary, Func<int, string, IEnumerable<string>> arguments, IDictionary<string, string>? environment = null)
    {
        var reason = Unavailable(binary);
        if (reason is not null) throw new InvalidOperationException(reason);
        // Through run-with-parent.js, which stops the emulator once this process is gone, however it ends.
        var wrapper = Path.Combine(EmulatorsDirectory!, "run-with-parent.js");
        var data = Path.Combine(Path.GetTempPath(), "shadowregistry-emulators", $"{binary}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(data);
        for (var attempt = 0; ; attempt++)
        {
            var port = FakeUpstream.FreePort();
            var info = new ProcessStartInfo("node")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add(wrapper);
            info.ArgumentList.Add(binary);
            foreach (var argument in arguments(port, data)) info.ArgumentList.Add(argument);
            foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
            var process = Process.Start(info)!;
            var output = new System.Text.StringBuilder();
            process.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < StartTimeout && !process.HasExited)
            {
                try
                {
                    using var client = new TcpClient();
                    client.Connect("127.0.0.1", port);
                    var emulator = new ObjectStoreEmulator(process, port, data);
                    AppDomain.CurrentDomain.ProcessExit += (_, _) => emulator.Dispose();
                    return emulator;
                }
                catch (SocketException)
                {
                    Thread.Sleep(100);
                }
            }
            Stop(process);
            string log;
            lock (output) log = output.ToString();
            // The port may have been taken between choosing it and the emulator binding it: try another.
            if (attempt < 2 && log.Contains("EADDRINUSE", StringComparison.Ordinal)) continue;
            throw new InvalidOperationException($"{binary} did not start listening on {port}: {log}");
        }
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        Stop(process);
        process.Dispose();
        try
        {
            if (Directory.Exists(dataDirectory)) Directory.Delete(dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the temp folder is swept by the system otherwise.
        }
    }
}
