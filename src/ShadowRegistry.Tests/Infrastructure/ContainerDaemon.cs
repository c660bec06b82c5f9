using System.Diagnostics;
using System.Net.Sockets;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A container daemon (dockerd or containerd) started by one test, as root, on private folders and a private unix
/// socket inside a scratch folder: nothing of the machine's own daemons, images or configuration is read or touched.
/// On dispose the daemon is asked to stop (SIGTERM, bounded wait), then its whole process tree is killed, anything
/// mounted under its folders (overlay snapshots) is unmounted, and the folders are removed.
/// </summary>
public abstract class ContainerDaemon : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process process;
    private readonly ProcessLog log;

    private protected ContainerDaemon(string name, Process process, ProcessLog log, ScratchDirectory scratch, string socketPath)
    {
        Name = name;
        this.process = process;
        this.log = log;
        Scratch = scratch;
        SocketPath = socketPath;
    }

    public string Name { get; }

    /// <summary>The daemon's private folder (data, state, configuration, socket); removed on dispose.</summary>
    public ScratchDirectory Scratch { get; }

    public string SocketPath { get; }

    /// <summary>Everything the daemon logged so far (for failure messages).</summary>
    public string Log => log.ToString();

    /// <summary>The end of <see cref="Log"/>, for the failure message of a client command.</summary>
    private protected string LogTail()
    {
        var text = Log;
        const int Keep = 12_000;
        return $"{Name} log{(text.Length > Keep ? " (its end)" : "")}:\n{(text.Length > Keep ? text[^Keep..] : text)}";
    }

    /// <summary>
    /// Why <paramref name="executable"/> cannot be started as a daemon here, or null when it can: the daemons need root
    /// (mounts, namespaces) and their binaries on PATH.
    /// </summary>
    public static string? Unavailable(string executable, string package)
    {
        if (!OperatingSystem.IsLinux())
        {
            return $"{executable} runs on Linux only";
        }
        if (!Environment.IsPrivilegedProcess)
        {
            return $"{executable} must run as root and the tests run as '{Environment.UserName}'";
        }
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        if (!path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Any(folder => File.Exists(Path.Combine(folder, executable))))
        {
            return $"{executable} is not installed (apt-get install -y {package}; .ci/run does it)";
        }
        return null;
    }

    /// <summary>Fails the test, saying why, when the daemon cannot be started here.</summary>
    private protected static void RequireAvailable(string executable, string package)
    {
        if (Unavailable(executable, package) is { } reason)
        {
            Assert.Fail($"This test starts its own {executable} and cannot: {reason}.");
        }
    }

    /// <summary>Starts <paramref name="executable"/>, waits (bounded) for its socket and for <paramref name="ready"/>.</summary>
    private protected static async Task<(Process Process, ProcessLog Log)> StartProcessAsync(
        string executable, IEnumerable<string> arguments, ScratchDirectory scratch, string socketPath, Func<Task<string?>> ready, ITestOutputHelper? output)
    {
        var startInfo = new ProcessStartInfo(executable)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = scratch.Path,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }
        foreach (var key in new[] { "DOCKER_HOST", "DOCKER_CONFIG", "CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy" })
        {
            startInfo.Environment.Remove(key);
        }
        startInfo.Environment["NO_PROXY"] = "127.0.0.1,localhost";
        output?.WriteLine($"$ {executable} {string.Join(' ', startInfo.ArgumentList)}");

        var log = new ProcessLog();
        var process = new Process { StartInfo = startInfo };
        log.Attach(process);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var stopwatch = Stopwatch.StartNew();
        var last = "the socket does not exist yet";
        while (stopwatch.Elapsed < StartTimeout)
        {
            if (process.HasExited)
            {
                var exitCode = process.ExitCode;
                await StopAsync(process, scratch.Path);
                scratch.Dispose();
                Assert.Fail($"{executable} exited with {exitCode} before it was ready.\n{log}");
            }
            if (File.Exists(socketPath) && await CanConnectAsync(socketPath))
            {
                var notReady = await ready();
                if (notReady is null)
                {
                    output?.WriteLine($"{executable} ready on {socketPath} after {stopwatch.Elapsed.TotalSeconds:0.0}s");
                    return (process, log);
                }
                last = notReady;
            }
            await Task.Delay(100);
        }
        await StopAsync(process, scratch.Path);
        scratch.Dispose();
        Assert.Fail($"{executable} was not ready on {socketPath} within {StartTimeout.TotalSeconds:0}s ({last}).\n{log}");
        throw new InvalidOperationException("unreachable");
    }

    private static async Task<bool> CanConnectAsync(string socketPath)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>SIGTERM and a bounded wait, then the whole tree killed, then every mount under <paramref name="root"/> lazily unmounted.</summary>
    private static async Task StopAsync(Process process, string root)
    {
        if (!process.HasExited)
        {
            Run("kill", "-TERM", process.Id.ToString());
            using var graceful = new CancellationTokenSource(StopTimeout);
            try
            {
                await process.WaitForExitAsync(graceful.Token);
            }
            catch (OperationCanceledException)
            {
                // Killed below.
            }
        }
        try
        {
            // Also reaches children that outlived a graceful stop (dockerd's containerd).
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited already.
        }
        using (var afterKill = new CancellationTokenSource(StopTimeout))
        {
            try
            {
                await process.WaitForExitAsync(afterKill.Token);
            }
            catch (OperationCanceledException)
            {
                // The folders are still unmounted and removed below.
            }
        }
        UnmountAll(root);
    }

    /// <summary>Lazily unmounts every mount point at or under <paramref name="root"/>, deepest first.</summary>
    private static void UnmountAll(string root)
    {
        var prefix = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var mountPoints = File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' '))
            .Where(fields => fields.Length > 4)
            .Select(fields => fields[4].Replace("\\040", " "))
            .Where(point => point == prefix || point.StartsWith(prefix + "/", StringComparison.Ordinal))
            .Distinct()
            .OrderByDescending(point => point.Length)
            .ToList();
        foreach (var point in mountPoints)
        {
            Run("umount", "-l", point);
        }
    }

    private static void Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var child = Process.Start(start)!;
        child.StandardError.ReadToEndAsync();
        child.StandardOutput.ReadToEnd();
        child.WaitForExit();
    }


    public virtual async ValueTask DisposeAsync()
    {
        await StopAsync(process, Scratch.Path);
        process.Dispose();
        Scratch.Dispose();
    }
}

/// <summary>
/// Debian's dockerd on a private --data-root, --exec-root, --pidfile, daemon.json and unix socket, with no iptables and
/// no bridge (so no network set-up at all; containers, which these tests never run, would need --network host).
/// 127.0.0.0/8 registries are insecure by default, so plain HTTP to a loopback registry needs no flag.
/// dockerd is pointed (--containerd) at a <see cref="ContainerdDaemon"/> of its own: the containerd dockerd would
/// otherwise start creates /opt/containerd, and its daemon.json sets "deprecated-key-path", without which dockerd
/// 20.10 writes /etc/docker/key.json.
/// </summary>
public sealed class DockerDaemon : ContainerDaemon
{
    private readonly ContainerdDaemon containerd;

    private DockerDaemon(Process process, ProcessLog log, ScratchDirectory scratch, string socketPath, ContainerdDaemon containerd)
        : base("dockerd", process, log, scratch, socketPath)
    {
        this.containerd = containerd;
    }

    /// <summary>Fails the test, saying why, when dockerd cannot be started here (call it before starting anything else).</summary>
    public static void Require()
    {
        RequireAvailable("dockerd", "docker.io");
        RequireAvailable("containerd", "containerd");
        ExternalTool.Require("docker");
    }

    /// <param name="registryMirrors">daemon.json "registry-mirrors" (Docker Hub mirrors), e.g. http://127.0.0.1:PORT.</param>
    public static Task<DockerDaemon> StartAsync(ITestOutputHelper? output = null, params string[] registryMirrors) =>
        StartAsync(new DockerDaemonSettings { RegistryMirrors = registryMirrors }, output);

    public static async Task<DockerDaemon> StartAsync(DockerDaemonSettings settings, ITestOutputHelper? output = null)
    {
        Require();
        var containerd = await ContainerdDaemon.StartAsync(output);
        try
        {
            return await StartAsync(containerd, output, settings);
        }
        catch (Exception)
        {
            await containerd.DisposeAsync();
            throw;
        }
    }

    private static async Task<DockerDaemon> StartAsync(ContainerdDaemon containerd, ITestOutputHelper? output, DockerDaemonSettings settings)
    {
        var scratch = new ScratchDirectory("dockerd");
        var socket = scratch.FilePath("docker.sock");
        var configFile = scratch.FilePath("daemon.json");
        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["registry-mirrors"] = new System.Text.Json.Nodes.JsonArray(settings.RegistryMirrors.Select(m => (System.Text.Json.Nodes.JsonNode)m).ToArray()),
            ["deprecated-key-path"] = scratch.FilePath("key.json"),
        };
        if (settings.InsecureRegistries.Count > 0)
        {
            config["insecure-registries"] = new System.Text.Json.Nodes.JsonArray(settings.InsecureRegistries.Select(r => (System.Text.Json.Nodes.JsonNode)r).ToArray());
        }
        File.WriteAllText(configFile, config.ToJsonString());
        string[] dockerdArguments =
        [
            "--config-file", configFile,
            "--data-root", scratch.Folder("data"),
            "--exec-root", scratch.Folder("exec"),
            "--pidfile", scratch.FilePath("dockerd.pid"),
            "-H", $"unix://{socket}",
            "--iptables=false", "--ip6tables=false", "--bridge=none",
            "--containerd", containerd.SocketPath,
        ];
        var (executable, arguments) = ("dockerd", dockerdArguments);
        if (settings.LoopbackNames.Count > 0)
        {
            // dockerd alone resolves these names to 127.0.0.1: it runs in a mount namespace of its own (unshare execs
            // sh, which execs dockerd: one process, the one stopped on dispose) where a copy of /etc/hosts with the
            // names added is bind-mounted over /etc/hosts. The machine's /etc/hosts is never written.
            var hosts = scratch.FilePath("hosts");
            File.WriteAllText(hosts, File.ReadAllText("/etc/hosts").TrimEnd() + "\n" + string.Concat(settings.LoopbackNames.Select(name => $"127.0.0.1 {name}\n")));
            (executable, arguments) = ("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec dockerd \"$@\"", hosts, .. dockerdArguments]);
        }
        var cli = Cli(scratch, socket, null);
        var (process, log) = await StartProcessAsync(executable, arguments, scratch, socket, async () =>
        {
            var version = await cli.TryRunAsync("version", "--format", "{{.Server.Version}}");
            return version.Succeeded ? null : $"docker version: {version.StandardError.Trim()}";
        }, output);
        return new DockerDaemon(process, log, scratch, socket, containerd);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await containerd.DisposeAsync();
    }

    /// <summary>The docker CLI against this daemon only (-H its socket), with a private DOCKER_CONFIG and the legacy builder.</summary>
    /// <param name="timeout">Longest run of one command (default <see cref="ExternalTool.DefaultTimeout"/>).</param>
    public ExternalTool Docker(ITestOutputHelper? output = null, TimeSpan? timeout = null) =>
        Cli(Scratch, SocketPath, output, timeout, LogTail);

    /// <summary>
    /// The environment a script that runs `docker` itself needs to reach this daemon only: DOCKER_HOST (its socket),
    /// the private DOCKER_CONFIG and the legacy builder.
    /// </summary>
    public IReadOnlyDictionary<string, string?> ClientEnvironment => ClientEnvironmentOf(Scratch, SocketPath);

    private static ExternalTool Cli(ScratchDirectory scratch, string socket, ITestOutputHelper? output, TimeSpan? timeout = null, Func<string>? daemonLog = null) => new("docker", output)
    {
        FailureContext = daemonLog,
        BaseArguments = ["-H", $"unix://{socket}"],
        Environment = new Dictionary<string, string?>(ClientEnvironmentOf(scratch, null)),
        WorkingDirectory = scratch.Path,
        Timeout = timeout ?? ExternalTool.DefaultTimeout,
    };

    /// <param name="socket">Null when the CLI is given -H instead.</param>
    private static Dictionary<string, string?> ClientEnvironmentOf(ScratchDirectory scratch, string? socket) => new()
    {
        ["DOCKER_CONFIG"] = scratch.Folder("cli-config"),
        // No buildx plugin here: the legacy builder builds FROM scratch + COPY offline, and says so without warning.
        ["DOCKER_BUILDKIT"] = "0",
        ["DOCKER_HOST"] = socket is null ? null : $"unix://{socket}",
        ["DOCKER_CONTEXT"] = null,
        ["DOCKER_CLI_HINTS"] = "false",
    };
}

/// <summary>What a <see cref="DockerDaemon"/> is configured with beyond its private folders.</summary>
public sealed record DockerDaemonSettings
{
    /// <summary>daemon.json "registry-mirrors" (Docker Hub mirrors), e.g. http://127.0.0.1:PORT.</summary>
    public IReadOnlyList<string> RegistryMirrors { get; init; } = [];

    /// <summary>daemon.json "insecure-registries" (host:port).</summary>
    public IReadOnlyList<string> InsecureRegistries { get; init; } = [];

    /// <summary>
    /// Host names that resolve to 127.0.0.1 for this dockerd only (e.g. "b.changes.localhost", which the Go resolver of
    /// dockerd 20.10 does not resolve by itself). Needs util-linux's unshare; the machine's /etc/hosts is not touched.
    /// </summary>
    public IReadOnlyList<string> LoopbackNames { get; init; } = [];
}

/// <summary>
/// Debian's containerd with a private config.toml: its own root, state, grpc and ttrpc sockets and opt folder; the CRI
/// plugin is disabled (ctr does not need it). <see cref="Ctr"/> drives it in the "default" namespace.
/// </summary>
public sealed class ContainerdDaemon : ContainerDaemon
{
    private ContainerdDaemon(Process process, ProcessLog log, ScratchDirectory scratch, string socketPath)
        : base("containerd", process, log, scratch, socketPath)
    {
    }

    /// <summary>Fails the test, saying why, when containerd cannot be started here (call it before starting anything else).</summary>
    public static void Require()
    {
        RequireAvailable("containerd", "containerd");
        ExternalTool.Require("ctr");
    }

    public static async Task<ContainerdDaemon> StartAsync(ITestOutputHelper? output = null)
    {
        Require();
        var scratch = new ScratchDirectory("containerd");
        var socket = scratch.FilePath("containerd.sock");
        var config = scratch.FilePath("config.toml");
        File.WriteAllText(config, $"""
            version = 2
            root = "{scratch.Folder("root")}"
            state = "{scratch.Folder("state")}"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]

            [grpc]
              address = "{socket}"

            [ttrpc]
              address = "{scratch.FilePath("containerd-ttrpc.sock")}"

            [debug]
              address = ""

            [metrics]
              address = ""

            [plugins."io.containerd.internal.v1.opt"]
              path = "{scratch.Folder("opt")}"
            """);
        var ctr = Cli(socket, null);
        var (process, log) = await StartProcessAsync("containerd", ["--config", config], scratch, socket, async () =>
        {
            var version = await ctr.TryRunAsync("version");
            return version.Succeeded ? null : $"ctr version: {version.StandardError.Trim()}";
        }, output);
        return new ContainerdDaemon(process, log, scratch, socket);
    }

    /// <summary>ctr against this containerd only (-a its socket).</summary>
    public ExternalTool Ctr(ITestOutputHelper? output = null) => Cli(SocketPath, output, LogTail);

    private static ExternalTool Cli(string socket, ITestOutputHelper? output, Func<string>? daemonLog = null) => new("ctr", output)
    {
        FailureContext = daemonLog,
        BaseArguments = ["-a", socket, "-n", "default"],
        Environment = new Dictionary<string, string?>
        {
            ["CONTAINERD_ADDRESS"] = null,
            ["CONTAINERD_NAMESPACE"] = null,
            ["NO_PROXY"] = "127.0.0.1,localhost",
        },
    };
}

/// <summary>
/// A test that starts its own dockerd. Skipped, with the reason, where it cannot (not root, not installed); never
/// skipped under CI=true, where it then fails saying why.
/// </summary>
public sealed class DockerDaemonFactAttribute : FactAttribute
{
    public DockerDaemonFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && ContainerDaemon.Unavailable("dockerd", "docker.io") is { } reason) Skip = $"Skipped: {reason}.";
    }
}

/// <summary>
/// A test that starts its own containerd. Skipped, with the reason, where it cannot (not root, not installed); never
/// skipped under CI=true, where it then fails saying why.
/// </summary>
public sealed class ContainerdDaemonFactAttribute : FactAttribute
{
    public ContainerdDaemonFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && ContainerDaemon.Unavailable("containerd", "containerd") is { } reason) Skip = $"Skipped: {reason}.";
    }
}
