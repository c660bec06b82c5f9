using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A real upstream registry for the shadowing tests: Debian's <c>docker-registry</c> (CNCF distribution 2.8) on a free
/// 127.0.0.1 port (it binds port 0 itself and the port is read from its "listening on" log line, so there is no race for
/// a port), with filesystem storage in a scratch folder. Killed and its folder deleted on dispose.
/// A missing binary fails the test; it is never skipped.
/// </summary>
public sealed partial class UpstreamDistribution : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly Process process;
    private readonly ScratchDirectory scratch;
    private readonly ProcessLog log;

    private UpstreamDistribution(Process process, ScratchDirectory scratch, ProcessLog log, string hostPort)
    {
        this.process = process;
        this.scratch = scratch;
        this.log = log;
        HostPort = hostPort;
        BaseAddress = new Uri($"http://{hostPort}/");
    }

    /// <summary>127.0.0.1:PORT, the registry host as container tools name it.</summary>
    public string HostPort { get; }

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri BaseAddress { get; }

    /// <summary>Everything docker-registry logged so far (for failure messages).</summary>
    public string Log => log.ToString();

    public HttpClient CreateClient() => new() { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };

    public static async Task<UpstreamDistribution> StartAsync(ITestOutputHelper? output = null)
    {
        var executable = ExternalTool.Require("docker-registry");
        var scratch = new ScratchDirectory("upstream");
        var storage = scratch.Folder("storage");
        var config = scratch.FilePath("config.yml");
        File.WriteAllText(config, $"""
            version: 0.1
            log:
              level: info
              formatter: text
              accesslog:
                disabled: false
            storage:
              filesystem:
                rootdirectory: {storage}
              delete:
                enabled: true
              maintenance:
                uploadpurging:
                  enabled: false
            http:
              addr: 127.0.0.1:0
              secret: shadowregistry-e2e-upstream
            """);

        var startInfo = new ProcessStartInfo(executable)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = scratch.Path,
        };
        startInfo.ArgumentList.Add("serve");
        startInfo.ArgumentList.Add(config);
        // The configuration file is the only source of settings.
        foreach (var key in startInfo.Environment.Keys.Where(k => k.StartsWith("REGISTRY_", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(key);
        }

        var log = new ProcessLog();
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        log.Attach(process, line =>
        {
            if (ListeningLine().Match(line) is { Success: true } match) listening.TrySetResult(match.Groups["address"].Value);
        });
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("docker-registry exited before it listened"));
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var upstream = default(UpstreamDistribution);
        try
        {
            string hostPort;
            try
            {
                hostPort = await listening.Task.WaitAsync(StartTimeout);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                throw new InvalidOperationException($"docker-registry did not start listening within {StartTimeout.TotalSeconds:0}s: {e.Message}\n{log}");
            }
            upstream = new UpstreamDistribution(process, scratch, log, hostPort);
            await upstream.WaitUntilReadyAsync();
            output?.WriteLine($"upstream docker-registry listening on {hostPort}, storage {storage}");
            return upstream;
        }
        catch (Exception)
        {
            if (upstream is not null)
            {
                await upstream.DisposeAsync();
            }
            else
            {
                await StopAsync(process);
                process.Dispose();
                scratch.Dispose();
            }
            throw;
        }
    }

    /// <summary>Polls GET /v2/ until it answers 200, bounded by <see cref="StartTimeout"/>.</summary>
    private async Task WaitUntilReadyAsync()
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        var last = "";
        while (deadline.Elapsed < StartTimeout)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"docker-registry exited with {process.ExitCode}\n{Log}");
            }
            try
            {
                using var response = await client.GetAsync("v2/");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
                last = $"GET /v2/ answered {(int)response.StatusCode}";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                last = e.Message;
            }
            await Task.Delay(100);
        }
        throw new InvalidOperationException($"docker-registry on {HostPort} did not answer GET /v2/ within {StartTimeout.TotalSeconds:0}s ({last})\n{Log}");
    }

    private static async Task StopAsync(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited in the meantime.
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // Nothing more to do; the scratch folder is still removed.
        }
    }


    public async ValueTask DisposeAsync()
    {
        await StopAsync(process);
        process.Dispose();
        scratch.Dispose();
    }

    [GeneratedRegex("msg=\"listening on (?<address>127\\.0\\.0\\.1:[0-9]+)\"", RegexOptions.CultureInvariant)]
    private static partial Regex ListeningLine();
}
