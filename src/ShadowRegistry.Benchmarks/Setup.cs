using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ShadowRegistry.Benchmarks;

/// <summary>Finds what the benchmark runs (the ShadowRegistry dll, dotnet, docker-registry) and how to start each server.</summary>
public sealed class Setup
{
    private Setup(string shadowDll, string dotnet, string distribution)
    {
        ShadowDll = shadowDll;
        Dotnet = dotnet;
        DistributionBinary = distribution;
    }

    public string ShadowDll { get; }
    public string Dotnet { get; }
    public string DistributionBinary { get; }
    public string ShadowDescription { get; private set; } = "";
    public string DistributionVersion { get; private set; } = "";
    public string Machine { get; private set; } = "";

    /// <summary>The object store ShadowRegistry runs on (<c>--storage s3|azure</c>), or null for its filesystem driver.</summary>
    public ObjectStore? Store { get; set; }

    /// <summary>ShadowRegistry's storage, for the report.</summary>
    public string ShadowStorage => Store is null ? "filesystem driver" : $"{Store.Driver} driver on {Store.Description}";

    public static async Task<Setup> PrepareAsync(BenchmarkOptions options, CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsLinux()) throw new InvalidOperationException("the benchmark reads /proc and runs on Linux only");

        var dotnet = options.DotnetHost ?? FindOnPath("dotnet")
            ?? (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } root && File.Exists(Path.Combine(root, "dotnet")) ? Path.Combine(root, "dotnet") : null)
            ?? throw new InvalidOperationException("dotnet was not found on PATH; pass --dotnet <path>");
        var distribution = options.DistributionBinary ?? FindOnPath("docker-registry")
            ?? throw new InvalidOperationException("docker-registry (CNCF distribution) was not found on PATH: `apt-get install docker-registry`, or pass --distribution <path>");
        if (!File.Exists(distribution)) throw new InvalidOperationException($"{distribution} does not exist");

        var repoRoot = FindRepoRoot();
        string dll;
        var staleNote = "";
        if (options.ShadowDll is { } given)
        {
            if (!File.Exists(given)) throw new InvalidOperationException($"--shadow-dll {given} does not exist");
            dll = given;
        }
        else
        {
            if (repoRoot is null) throw new InvalidOperationException("could not find the repository (ShadowRegistry.sln) above this program or the current folder; pass --shadow-dll");
            var project = Path.Combine(repoRoot, "src", "ShadowRegistry");
            // The published build, as the container image runs it: publishing compiles it ahead of time (Native AOT) into
            // the executable ShadowRegistry. A build published without it (ReadyToRun, a dll) is run with dotnet.
            var publish = Path.Combine(project, "bin", "Release", "net10.0", RuntimeInformation.RuntimeIdentifier, "publish");
            dll = Published(publish) ?? "";
            if (dll.Length == 0)
            {
                Benchmark.Progress($"{publish} has no build: running `{PublishCommand}`");
                await BuildAsync(dotnet, repoRoot, project, cancellationToken);
                dll = Published(publish) ?? throw new InvalidOperationException($"the build did not produce {Path.Combine(publish, "ShadowRegistry")}");
            }
            else if (NewestSource(project) is { } newest && newest.Time > File.GetLastWriteTimeUtc(dll))
            {
                staleNote = $" (WARNING: older than {Path.GetRelativePath(project, newest.Path)}; run `{PublishCommand}` for current numbers)";
                Benchmark.Progress($"warning: {dll} is older than {newest.Path}; the benchmark runs the build as it is");
            }
        }

        var setup = new Setup(dll, dotnet, distribution);
        // The commit only describes the dll when it is this repository's own build output.
        var inRepo = repoRoot is not null && dll.StartsWith(repoRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        var commit = inRepo ? (await RunAsync("git", ["-C", repoRoot!, "rev-parse", "--short", "HEAD"], cancellationToken))?.Trim() : null;
        var dirty = inRepo ? await RunAsync("git", ["-C", repoRoot!, "status", "--porcelain", "--", "src/ShadowRegistry"], cancellationToken) : null;
        setup.ShadowDescription = $"{(inRepo ? Path.GetRelativePath(repoRoot!, dll) : dll)}{staleNote}" +
            (string.IsNullOrEmpty(commit) ? "" : $", commit {commit}{(string.IsNullOrWhiteSpace(dirty) ? "" : " + uncommitted changes in src/ShadowRegistry")}") +
            $", {RuntimeDescription(dll)}, log level Warning";
        setup.DistributionVersion = (await RunAsync(distribution, ["--version"], cancellationToken))?.Trim() is { Length: > 0 } version ? version : distribution;
        setup.Machine = DescribeMachine();
        return setup;
    }

    public const string PublishCommand = "dotnet publish -c Release --ucr -p:PublishAot=true src/ShadowRegistry";

    /// <summary>
    /// What a publish folder holds: the Native AOT executable unless a dll was published after it, or the dll, or null.
    /// A publish without AOT writes a small launcher of the same name beside its dll (an apphost, tens of KiB; the AOT
    /// executable is tens of MiB): the dll is what that runs.
    /// </summary>
    private static string? Published(string folder)
    {
        var native = new FileInfo(Path.Combine(folder, "ShadowRegistry"));
        var dll = new FileInfo(Path.Combine(folder, "ShadowRegistry.dll"));
        if (native.Exists && native.Length > 1024 * 1024 && (!dll.Exists || dll.LastWriteTimeUtc <= native.LastWriteTimeUtc)) return native.FullName;
        return dll.Exists ? dll.FullName : null;
    }

    /// <summary>A dll runs under the dotnet host; anything else is the native (Native AOT) executable, run as it is.</summary>
    private static bool IsDll(string path) => path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);

    /// <summary>skopeo on PATH, or null (its scenarios are then skipped).</summary>
    public string? Skopeo { get; } = FindOnPath("skopeo");

    /// <param name="extra">More command-line settings (the pull-through scenario's upstream).</param>
    public ProcessStartInfo ShadowStartInfo(int port, string dataFolder, params string[] extra)
    {
        var startInfo = new ProcessStartInfo(IsDll(ShadowDll) ? Dotnet : ShadowDll);
        if (IsDll(ShadowDll)) startInfo.ArgumentList.Add(ShadowDll);
        string[] arguments =
        [
            "serve",
            "--listen", $"http://127.0.0.1:{port}",
            "--data", dataFolder,
            "--Serilog:MinimumLevel:Default", "Warning",
            .. Store?.ShadowArguments() ?? [],
            .. extra,
        ];
        foreach (var arg in arguments)
        {
            startInfo.ArgumentList.Add(arg);
        }
        // Only the command line and the appsettings.json beside the dll configure it.
        RemoveVariables(startInfo, "Registry__", "Auth__", "Shadow__", "Serilog__", "Kestrel__", "ASPNETCORE_", "URLS");
        return startInfo;
    }

    /// <param name="proxyRemoteUrl">Runs distribution as a pull-through cache of this registry (its proxy mode).</param>
    public ProcessStartInfo DistributionStartInfo(int port, string folder, string? proxyRemoteUrl = null)
    {
        var storage = Directory.CreateDirectory(Path.Combine(folder, "storage")).FullName;
        var config = Path.Combine(folder, "config.yml");
        File.WriteAllText(config, $"""
            version: 0.1
            log:
              level: error
              formatter: text
              accesslog:
                disabled: true
            storage:
              cache:
                blobdescriptor: inmemory
              filesystem:
                rootdirectory: {storage}
              delete:
                enabled: true
              maintenance:
                uploadpurging:
                  enabled: false
            http:
              addr: 127.0.0.1:{port}
              secret: shadowregistry-benchmark
            """ + (proxyRemoteUrl is null ? "" : $"\nproxy:\n  remoteurl: {proxyRemoteUrl}\n"));
        var startInfo = new ProcessStartInfo(DistributionBinary);
        startInfo.ArgumentList.Add("serve");
        startInfo.ArgumentList.Add(config);
        RemoveVariables(startInfo, "REGISTRY_");
        return startInfo;
    }

    private static void RemoveVariables(ProcessStartInfo startInfo, params string[] prefixes)
    {
        foreach (var key in startInfo.Environment.Keys.Where(k => prefixes.Any(p => k.StartsWith(p, StringComparison.OrdinalIgnoreCase))).ToList())
        {
            startInfo.Environment.Remove(key);
        }
    }

    private static async Task BuildAsync(string dotnet, string repoRoot, string project, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = repoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "publish", "-c", "Release", "--ucr", "-p:PublishAot=true", "-nologo", project }) startInfo.ArgumentList.Add(arg);
        using var process = new Process { StartInfo = startInfo };
        // The build's output goes to stderr: stdout is the report.
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine(e.Data); };
        process.Start();
        Cleanup.Register(process);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0) throw new InvalidOperationException($"`{PublishCommand}` failed with exit code {process.ExitCode}");
    }

    private static (string Path, DateTime Time)? NewestSource(string project)
    {
        var bin = Path.Combine(project, "bin") + Path.DirectorySeparatorChar;
        var obj = Path.Combine(project, "obj") + Path.DirectorySeparatorChar;
        return Directory.EnumerateFiles(project, "*", SearchOption.AllDirectories)
            .Where(f => !f.StartsWith(bin, StringComparison.Ordinal) && !f.StartsWith(obj, StringComparison.Ordinal))
            .Where(f => f.EndsWith(".cs", StringComparison.Ordinal) || f.EndsWith(".csproj", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal))
            .Select(f => (Path: f, Time: File.GetLastWriteTimeUtc(f)))
            .OrderByDescending(x => x.Time)
            .Cast<(string, DateTime)?>()
            .FirstOrDefault();
    }

    private static string? FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "ShadowRegistry.sln"))) return dir.FullName;
            }
        }
        return null;
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Output of a short command, or null when it cannot run; bounded to 10 s.</summary>
    private static async Task<string?> RunAsync(string file, string[] args, CancellationToken cancellationToken)
    {
        try
        {
            var startInfo = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in args) startInfo.ArgumentList.Add(arg);
            using var process = Process.Start(startInfo);
            if (process is null) return null;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var error = process.StandardError.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            return process.ExitCode == 0 ? await output : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Runtime and GC flavour the dll runs with (the host picks the same runtime as this program's).</summary>
    private static string RuntimeDescription(string dll)
    {
        // Native AOT compiles the runtime in, with the project's GC settings (server GC, from the web SDK).
        if (!IsDll(dll)) return $"Native AOT (.NET {Environment.Version}), server GC";
        var gc = "workstation GC";
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(dll, ".runtimeconfig.json")));
            if (json.RootElement.TryGetProperty("runtimeOptions", out var runtime)
                && runtime.TryGetProperty("configProperties", out var properties)
                && properties.TryGetProperty("System.GC.Server", out var server)
                && server.ValueKind == System.Text.Json.JsonValueKind.True)
            {
                gc = "server GC";
            }
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException)
        {
            gc = "GC mode unknown";
        }
        return $".NET {Environment.Version}, {gc}";
    }

    private static string DescribeMachine()
    {
        string? Read(string file, string key)
        {
            try
            {
                return File.ReadLines(file).FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?[key.Length..].Trim(' ', '\t', ':', '=', '"');
            }
            catch (IOException)
            {
                return null;
            }
        }
        var cpu = Read("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();
        var memKiB = long.TryParse(Read("/proc/meminfo", "MemTotal")?.Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kib) ? kib : 0;
        var os = Read("/etc/os-release", "PRETTY_NAME") ?? RuntimeInformation.OSDescription;
        var kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{cpu}, {Environment.ProcessorCount} cores, {memKiB / 1024.0 / 1024.0:0.0} GiB RAM, {os}, kernel {kernel}");
    }
}
