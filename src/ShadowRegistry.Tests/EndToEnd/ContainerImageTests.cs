using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// The repository's Dockerfile, built and run for real with a dockerd of the test's own (see <see cref="DockerDaemon"/>).
/// These machines cannot pull the official .NET images, so the build uses the local stand-ins that .ci/base-images
/// makes from Debian and this machine's .NET (its debootstrap is cached under /var/tmp across runs; the images are
/// imported into the test's daemon each time and go with it). The daemon has no bridge, so the container runs with
/// --network host on a free loopback port, set through ASPNETCORE_URLS as the README says.
/// </summary>
public sealed partial class ContainerImageTests(ITestOutputHelper output)
{
    private const string StorageRoot = "/var/lib/shadow-registry";
    private static readonly TimeSpan HealthyWithin = TimeSpan.FromSeconds(60);

    [DockerDaemonFact]
    public async Task ImageBuiltFromSourceRunsAsNonRootTurnsHealthyAndServesDockerPushAndPull()
    {
        DockerDaemon.Require();
        ExternalTool.Require("debootstrap");
        var root = RepositoryRoot();
        await using var daemon = await DockerDaemon.StartAsync(output);
        var docker = daemon.Docker(output);

        // The first run on a machine debootstraps (minutes); later ones only import the cached file systems.
        var baseImages = new ExternalTool(Path.Combine(root, ".ci", "base-images"), output)
        {
            Environment = daemon.ClientEnvironment,
            WorkingDirectory = root,
            Timeout = TimeSpan.FromMinutes(15),
        };
        await baseImages.RunAsync();

        var suffix = Guid.NewGuid().ToString("N")[..8];
        var image = $"shadowregistry-e2e/registry:{suffix}";
        await daemon.Docker(output, TimeSpan.FromMinutes(10)).RunAsync(
            "build", "--network", "host",
            "--build-arg", "SDK_IMAGE=shadowregistry/sdk-base", "--build-arg", "RUNTIME_IMAGE=shadowregistry/runtime-base",
            "--tag", image, root);

        // What the Dockerfile promises: a non-root user, one port, the storage root in a volume, a health check.
        var user = await InspectAsync(docker, "image", image, "{{.Config.User}}");
        Assert.True(user.Length > 0 && user is not ("0" or "root"), $"the image runs as '{user}', not as a non-root user");
        Assert.Equal("""{"5000/tcp":{}}""", await InspectAsync(docker, "image", image, "{{json .Config.ExposedPorts}}"));
        Assert.Contains($"\"{StorageRoot}\"", await InspectAsync(docker, "image", image, "{{json .Config.Volumes}}"));
        Assert.Contains("healthcheck", await InspectAsync(docker, "image", image, "{{json .Config.Healthcheck.Test}}"));

        var port = FakeUpstream.FreePort();
        var container = $"shadowregistry-e2e-{suffix}";
        try
        {
            // The image's own health check command, probed every second rather than every 15 s to keep the test short.
            await docker.RunAsync("run", "--detach", "--name", container, "--network", "host", "--health-interval", "1s",
                "--env", $"ASPNETCORE_URLS=http://127.0.0.1:{port}", image);
            await WaitUntilHealthyAsync(docker, container);

            using (var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) })
            using (var response = await http.GetAsync($"http://127.0.0.1:{port}/v2/"))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("{}", await response.Content.ReadAsStringAsync());
            }

            // The registry itself (PID 1 of the container) runs as the image's user, not as root.
            var status = (await docker.RunAsync("exec", container, "cat", "/proc/1/status")).StandardOutput;
            var uid = UidLine().Match(status) is { Success: true } match ? match.Groups["uid"].Value : throw new Xunit.Sdk.XunitException($"no Uid line in /proc/1/status:\n{status}");
            Assert.NotEqual("0", uid);
            Assert.Equal(uid, (await docker.RunAsync("exec", container, "id", "-u")).StandardOutput.Trim());

            // docker push and pull of a small image FROM scratch, through the containerised registry.
            var context = daemon.Scratch.Folder("hello");
            File.WriteAllText(Path.Combine(context, "hello.txt"), $"hello from the container image test {suffix}\n");
            File.WriteAllText(Path.Combine(context, "Dockerfile"), "FROM scratch\nCOPY hello.txt /hello.txt\n");
            var pushed = $"127.0.0.1:{port}/e2e/hello:v1";
            await docker.RunAsync("build", "--tag", pushed, context);
            var imageId = await InspectAsync(docker, "image", pushed, "{{.Id}}");
            await docker.RunAsync("push", pushed);
            await docker.RunAsync("rmi", pushed);
            await docker.RunAsync("pull", pushed);
            Assert.Equal(imageId, await InspectAsync(docker, "image", pushed, "{{.Id}}"));

            // What was pushed lives in the container's volume, mounted at the storage root.
            Assert.Contains($"volume {StorageRoot};", await InspectAsync(docker, "container", container, "{{range .Mounts}}{{.Type}} {{.Destination}};{{end}}"));
            Assert.Contains("hello", (await docker.RunAsync("exec", container, "ls", $"{StorageRoot}/repositories/e2e")).StandardOutput);
        }
        finally
        {
            // The container's processes belong to containerd's shim, which the daemons' shutdown would not reach.
            await docker.TryRunAsync("rm", "--force", "--volumes", container);
            await docker.TryRunAsync("rmi", "--force", image);
        }
    }

    /// <summary>Polls (bounded) until Docker reports the container healthy; fails at once if it stops or turns unhealthy.</summary>
    private async Task WaitUntilHealthyAsync(ExternalTool docker, string container)
    {
        var waited = Stopwatch.StartNew();
        var last = "";
        while (waited.Elapsed < HealthyWithin)
        {
            last = await InspectAsync(docker, "container", container, "{{.State.Status}} {{.State.Health.Status}}");
            if (last == "running healthy")
            {
                output.WriteLine($"healthy after {waited.Elapsed.TotalSeconds:0.0}s");
                return;
            }
            if (!last.StartsWith("running ", StringComparison.Ordinal) || last.EndsWith(" unhealthy", StringComparison.Ordinal))
            {
                break;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }
        var health = await docker.TryRunAsync("inspect", "--format", "{{json .State.Health}}", container);
        var logs = await docker.TryRunAsync("logs", container);
        Assert.Fail($"the container is '{last}', not 'running healthy', after {waited.Elapsed.TotalSeconds:0}s.\n"
            + $"health: {health.StandardOutput}\nlogs:\n{logs.StandardOutput}{logs.StandardError}");
    }

    private static async Task<string> InspectAsync(ExternalTool docker, string kind, string name, string format) =>
        (await docker.RunAsync(kind, "inspect", "--format", format, name)).StandardOutput.Trim();

    private static string RepositoryRoot()
    {
        for (var directory = AppContext.BaseDirectory; directory is not null; directory = Path.GetDirectoryName(directory))
            if (File.Exists(Path.Combine(directory, "ShadowRegistry.sln"))) return directory;
        throw new InvalidOperationException("cannot find the repository root above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^Uid:\s+(?<uid>\d+)", RegexOptions.Multiline)]
    private static partial Regex UidLine();
}
