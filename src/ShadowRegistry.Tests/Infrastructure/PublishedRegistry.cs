using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// The registry run as a process of its own from a published executable (the Native AOT build, say) named by
/// <see cref="BinaryVariable"/>, for a targeted run of the tests against what ships. Started with the arguments the
/// in-process server gets; stopped with SIGTERM (then killed), and killed when the test process exits.
/// </summary>
public sealed partial class PublishedRegistry : IAsyncDisposable
{
    /// <summary>Path of a published ShadowRegistry executable; unset (the default), tests run the registry in-process.</summary>
    public const string BinaryVariable = "SHADOWREGISTRY_TEST_BINARY";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly Process process;
    private readonly ProcessLog log;

    private PublishedRegistry(Process process, ProcessLog log)
    {
        this.process = process;
        this.log = log;
    }

    /// <summary>The executable to run, or null when the tests run the registry in-process.</summary>
    public static string? Binary => Environment.GetEnvironmentVariable(BinaryVariable) is { Length: > 0 } path ? path : null;

    public string Log => log.ToString();

    /// <summary>Starts <see cref="Binary"/> with <paramref name="args"/> and answers its first listen address once it listens.</summary>
    public static async Task<(PublishedRegistry Process, string Url)> StartAsync(string binary, IReadOnlyList<string> args)
    {
        var startInfo = new ProcessStartInfo(binary)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("serve");
        foreach (var arg in args) startInfo.ArgumentList.Add(arg);
        // Kestrel says where it listens (port 0 becomes a real port) at Information, under this source only.
        startInfo.ArgumentList.Add("--Serilog:MinimumLevel:Override:Microsoft.Hosting.Lifetime");
        startInfo.ArgumentList.Add("Information");
        var log = new ProcessLog();
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        log.Attach(process, line =>
        {
            if (ListeningLine().Match(line) is { Success: true } match) listening.TrySetResult(match.Groups["url"].Value);
        });
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("the registry exited before it listened"));
        process.Start();
        var started = new PublishedRegistry(process, log);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => started.Kill();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return (started, await listening.Task.WaitAsync(StartTimeout));
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            await started.DisposeAsync();
            throw new InvalidOperationException($"{binary} did not listen within {StartTimeout.TotalSeconds:0}s: {e.Message}\n{log}");
        }
    }

    [GeneratedRegex(@"Now listening on: (?<url>https?://\S+)")]
    private static partial Regex ListeningLine();

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited) _ = SignalTerm(process.Id, 15);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
        process.Dispose();
    }

    private void Kill()
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SignalTerm(int pid, int signal);
}
