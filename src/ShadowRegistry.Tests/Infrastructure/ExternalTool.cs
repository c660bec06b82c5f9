using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>What one run of an external program did.</summary>
public sealed record ToolResult(string CommandLine, int ExitCode, string StandardOutput, string StandardError, TimeSpan Elapsed)
{
    public bool Succeeded => ExitCode == 0;

    public string Describe() =>
        $"""
        command:   {CommandLine}
        exit code: {ExitCode} after {Elapsed.TotalSeconds:0.0}s
        --- stdout ---
        {StandardOutput.TrimEnd()}
        --- stderr ---
        {StandardError.TrimEnd()}
        """;
}

/// <summary>
/// Runs a command-line tool (skopeo, podman, ...) the end-to-end tests drive: a bounded run (the whole process tree is
/// killed on timeout), stdout and stderr captured, the test failed with the full output when the exit code is not 0.
/// A tool missing from PATH fails the test; it is never skipped.
/// </summary>
public sealed class ExternalTool
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(90);

    private readonly ITestOutputHelper? output;

    public ExternalTool(string name, ITestOutputHelper? output = null)
    {
        Name = name;
        ExecutablePath = Require(name);
        this.output = output;
    }

    public string Name { get; }

    public string ExecutablePath { get; }

    /// <summary>Arguments put before every command's own (global options such as podman's --root).</summary>
    public IReadOnlyList<string> BaseArguments { get; init; } = [];

    /// <summary>Environment changes for the child; a null value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    public string? WorkingDirectory { get; init; }

    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>More to say when a run fails, read at that moment (e.g. the log of the daemon the tool talks to).</summary>
    public Func<string>? FailureContext { get; init; }

    /// <summary>The full path of <paramref name="name"/> on PATH; fails the test with install instructions when absent.</summary>
    public static string Require(string name)
    {
        var found = Find(name);
        if (found is null)
        {
            Assert.Fail(
                $"The end-to-end tests need '{name}', which is not installed (not found on PATH='{System.Environment.GetEnvironmentVariable("PATH")}'). "
                + "Run .ci/run, which installs skopeo, podman, docker-registry, uidmap, docker.io and containerd, "
                + "or install them by hand: sudo apt-get install -y skopeo podman docker-registry uidmap docker.io containerd.");
        }
        return found!;
    }

    private static string? Find(string name)
    {
        if (name.Contains('/'))
        {
            return File.Exists(name) ? Path.GetFullPath(name) : null;
        }
        var path = System.Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var folder in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(folder, name);
            if (File.Exists(candidate) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0))
            {
                return candidate;
            }
        }
        return null;
    }

    /// <summary>Runs and fails the test (with the command, exit code, stdout and stderr) unless the exit code is 0.</summary>
    public async Task<ToolResult> RunAsync(params string[] arguments)
    {
        var result = await TryRunAsync(arguments);
        if (!result.Succeeded)
        {
            Assert.Fail($"{Name} failed.\n{result.Describe()}{DescribeContext()}");
        }
        return result;
    }

    /// <summary>Runs and returns whatever exit code the tool gave; only a timeout fails the test here.</summary>
    public async Task<ToolResult> TryRunAsync(params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = WorkingDirectory ?? "",
        };
        foreach (var argument in BaseArguments.Concat(arguments))
        {
            startInfo.ArgumentList.Add(argument);
        }
        foreach (var (key, value) in Environment)
        {
            if (value is null)
            {
                startInfo.Environment.Remove(key);
            }
            else
            {
                startInfo.Environment[key] = value;
            }
        }
        var commandLine = string.Join(' ', new[] { Name }.Concat(startInfo.ArgumentList).Select(Quote));
        output?.WriteLine($"$ {commandLine}");

        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var stopwatch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = startInfo };
        process.Start();
        process.StandardInput.Close();
        var pumps = Task.WhenAll(PumpAsync(process.StandardOutput, stdout), PumpAsync(process.StandardError, stderr));

        var timedOut = false;
        using (var timeout = new CancellationTokenSource(Timeout))
        {
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // It exited in the meantime.
                }
                using var afterKill = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await process.WaitForExitAsync(afterKill.Token);
                }
                catch (OperationCanceledException)
                {
                    // Reported below with whatever output there is.
                }
            }
        }
        // A grandchild that inherited the pipes could keep them open; do not wait for it for long.
        await Task.WhenAny(pumps, Task.Delay(TimeSpan.FromSeconds(5)));
        stopwatch.Stop();

        var result = new ToolResult(commandLine, process.HasExited ? process.ExitCode : -1, Snapshot(stdout), Snapshot(stderr), stopwatch.Elapsed);
        output?.WriteLine($"exit {result.ExitCode} after {result.Elapsed.TotalSeconds:0.0}s");
        if (result.StandardOutput.Length > 0)
        {
            output?.WriteLine(Truncate(result.StandardOutput));
        }
        if (result.StandardError.Length > 0)
        {
            output?.WriteLine(Truncate(result.StandardError));
        }
        if (timedOut)
        {
            Assert.Fail($"{Name} did not finish within {Timeout.TotalSeconds:0}s and was killed.\n{result.Describe()}{DescribeContext()}");
        }
        return result;
    }

    private string DescribeContext() => FailureContext is { } context ? $"\n--- context ---\n{Truncate(context())}" : "";

    private static async Task PumpAsync(StreamReader reader, StringBuilder sink)
    {
        var buffer = new char[8192];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            lock (sink)
            {
                sink.Append(buffer, 0, read);
            }
        }
    }

    private static string Snapshot(StringBuilder sink)
    {
        lock (sink)
        {
            return sink.ToString();
        }
    }

    private static string Truncate(string text) => text.Length <= 20_000 ? text.TrimEnd() : text[..20_000] + "\n[... truncated in the test log ...]";

    private static string Quote(string argument) =>
        argument.Length > 0 && argument.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@,+%".Contains(c)) ? argument : "'" + argument.Replace("'", "'\\''") + "'";
}
