using System.Diagnostics;
using System.Net;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// The registry as an operator runs it: its own process (`dotnet ShadowRegistry.dll serve`, the build of this
/// checkout beside the tests), on a free loopback port, so a test can kill it as a crash or an OOM kill would.
/// Killed (with its whole tree) when disposed.
/// </summary>
public sealed class RegistryProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    private readonly Process process;
    private readonly ProcessLog log;

    private RegistryProcess(Process process, ProcessLog log, Uri baseAddress)
    {
        this.process = process;
        this.log = log;
        BaseAddress = baseAddress;
    }

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri BaseAddress { get; }

    public string Output => log.ToString();

    /// <summary>The registry dll built with the tests (the test project references it), in its own output folder.</summary>
    private static string Dll()
    {
        // .../src/ShadowRegistry.Tests/bin/<Configuration>/<tfm>/ -> .../src/ShadowRegistry/bin/<Configuration>/<tfm>/
        var tests = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var dll = Path.Combine(TestPaths.RepositoryRoot(), "src", "ShadowRegistry", "bin", tests.Parent!.Name, tests.Name, "ShadowRegistry.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} is missing: build src/ShadowRegistry");
        return dll;
    }

    public static async Task<RegistryProcess> StartAsync(params string[] arguments)
    {
        var port = FakeUpstream.FreePort();
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[Dll(), "serve", "--listen", $"http://127.0.0.1:{port}", "--Serilog:MinimumLevel:Default", "Warning", .. arguments])
            info.ArgumentList.Add(argument);
        // Only the command line configures it.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("Registry__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToList())
            info.Environment.Remove(key);
        var process = new Process { StartInfo = info };
        var log = new ProcessLog();
        log.Attach(process);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var registry = new RegistryProcess(process, log, new Uri($"http://127.0.0.1:{port}/"));
        using var client = registry.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(5);
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout && !process.HasExited)
        {
            try
            {
                using var response = await client.GetAsync("v2/");
                if (response.StatusCode == HttpStatusCode.OK) return registry;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }
            await Task.Delay(100);
        }
        await registry.DisposeAsync();
        throw new InvalidOperationException($"the registry process did not answer GET /v2/ within {StartTimeout.TotalSeconds:0} s: {log}");
    }

    public HttpClient CreateClient() => new() { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(2) };

    /// <summary>SIGKILL: no shutdown, no flush, no lease released.</summary>
    public void Kill()
    {
        if (process.HasExited) return;
        process.Kill(entireProcessTree: true);
        process.WaitForExit(10_000);
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            Kill();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        process.Dispose();
        return ValueTask.CompletedTask;
    }
}
