using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ShadowRegistry.Benchmarks;

/// <summary>
/// The object store ShadowRegistry runs on with <c>--storage s3|azure</c>: the same emulator the tests use (s3rver,
/// azurite from the repository's .ci/emulators, installed there by `npm ci`), started on a free loopback port with a
/// data folder under the benchmark's temp folder, and registered with <see cref="Cleanup"/>.
/// </summary>
public sealed class ObjectStore
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    /// <summary>The s3rver's fixed credentials and Azurite's well-known development account (public, not secrets).</summary>
    private const string S3Key = "S3RVER";
    private const string AzureAccount = "devstoreaccount1";
    private const string AzureKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private ObjectStore(string driver, string endpoint, string description)
    {
        Driver = driver;
        Endpoint = endpoint;
        Description = description;
    }

    /// <summary>"s3" or "azure".</summary>
    public string Driver { get; }

    public string Endpoint { get; }

    /// <summary>The emulator and its version, for the report.</summary>
    public string Description { get; }

    /// <summary>ShadowRegistry's configuration for this store (Registry:Storage:*), a bucket or container of its own.</summary>
    public IEnumerable<string> ShadowArguments() => Driver == "s3"
        ?
        [
            "--Registry:Storage:Driver", "s3", "--Registry:Storage:S3:Endpoint", Endpoint, "--Registry:Storage:S3:ForcePathStyle", "true",
            "--Registry:Storage:S3:Bucket", "shadowregistry", "--Registry:Storage:S3:CreateBucket", "true",
            "--Registry:Storage:S3:AccessKey", S3Key, "--Registry:Storage:S3:SecretKey", S3Key,
        ]
        :
        [
            "--Registry:Storage:Driver", "azure", "--Registry:Storage:Azure:Container", "shadowregistry",
            "--Registry:Storage:Azure:ConnectionString",
            $"DefaultEndpointsProtocol=http;AccountName={AzureAccount};AccountKey={AzureKey};BlobEndpoint={Endpoint}/{AzureAccount};",
        ];

    public static async Task<ObjectStore> StartAsync(string driver, string dataFolder, CancellationToken cancellationToken)
    {
        var emulators = FindEmulators();
        var binary = driver == "s3" ? "s3rver" : "azurite-blob";
        if (!File.Exists(Path.Combine(emulators, "node_modules", ".bin", binary)))
            throw new InvalidOperationException($"{binary} is not installed: run `npm ci` in {emulators}");
        var port = ServerProcess.FreePort();
        var portText = port.ToString(CultureInfo.InvariantCulture);
        Directory.CreateDirectory(dataFolder);
        var startInfo = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // run-with-parent.js stops the emulator when this process is gone, however it ends.
        string[] arguments = driver == "s3"
            ? [Path.Combine(emulators, "run-with-parent.js"), binary, "--address", "127.0.0.1", "--port", portText, "--directory", dataFolder, "--silent", "--no-vhost-buckets"]
            : [Path.Combine(emulators, "run-with-parent.js"), binary, "--blobHost", "127.0.0.1", "--blobPort", portText, "--location", dataFolder,
               "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent"];
        foreach (var argument in arguments) startInfo.ArgumentList.Add(argument);
        // s3rver's list continuation tokens use a cipher that Node 17+ only offers with the legacy provider.
        if (driver == "s3") startInfo.Environment["NODE_OPTIONS"] = "--openssl-legacy-provider";
        var process = new Process { StartInfo = startInfo };
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"{binary}: {e.Data}"); };
        process.Start();
        Cleanup.Register(process);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (!process.HasExited && deadline.Elapsed < StartTimeout)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
                var version = await Version(emulators, driver == "s3" ? "s3rver" : "azurite");
                return new ObjectStore(driver, $"http://127.0.0.1:{port}", $"{(driver == "s3" ? "s3rver" : "azurite")} {version} on {port}");
            }
            catch (SocketException)
            {
                await Task.Delay(100, cancellationToken);
            }
        }
        throw new InvalidOperationException($"{binary} did not listen on {port} within {StartTimeout.TotalSeconds:0} s");
    }

    private static async Task<string> Version(string emulators, string package)
    {
        using var json = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(emulators, "node_modules", package, "package.json")));
        return json.RootElement.GetProperty("version").GetString() ?? "?";
    }

    private static string FindEmulators()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                var candidate = Path.Combine(directory.FullName, ".ci", "emulators");
                if (File.Exists(Path.Combine(candidate, "package.json"))) return candidate;
            }
        }
        throw new InvalidOperationException("no .ci/emulators folder above this program or the current folder");
    }
}
