using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// Docker against the real registry on Kestrel: each test starts its own dockerd (Debian's docker.io, as root, private
/// data root, exec root, daemon.json and socket; see <see cref="DockerDaemon"/>) and drives it with the docker CLI.
/// </summary>
public sealed partial class DockerEndToEndTests(ITestOutputHelper output)
{
    [DockerDaemonFact]
    public async Task BuiltImageSurvivesPushRemoveAndPullByTagAndByDigest()
    {
        DockerDaemon.Require();
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        await using var daemon = await DockerDaemon.StartAsync(output);
        var docker = daemon.Docker(output);

        // A three-layer image FROM scratch: no base image, no network, no RUN step.
        var payload = new byte[300 * 1024];
        new Random(11).NextBytes(payload);
        var context = daemon.Scratch.Folder("context");
        File.WriteAllBytes(Path.Combine(context, "payload.bin"), payload);
        File.WriteAllText(Path.Combine(context, "hello.txt"), "hello from the Docker end-to-end test\n");
        File.WriteAllText(Path.Combine(context, "version.txt"), "v1\n");
        File.WriteAllText(Path.Combine(context, "Dockerfile"), """
            FROM scratch
            COPY payload.bin /data/payload.bin
            COPY hello.txt /hello.txt
            COPY version.txt /etc/version.txt
            LABEL org.shadowregistry.e2e=docker
            """);
        var repository = $"{server.HostPort}/e2e/app";
        var image = $"{repository}:v1";
        await docker.RunAsync("build", "--tag", image, context);
        var imageId = await InspectAsync(docker, image, "{{.Id}}");
        Assert.Equal("3", await InspectAsync(docker, image, "{{len .RootFS.Layers}}"));

        // Push: the digest Docker reports is the manifest the registry holds, whose config is the image Docker built.
        var push = await docker.RunAsync("push", image);
        var pushed = PushDigest().Match(push.StandardOutput) is { Success: true } match
            ? match.Groups["digest"].Value
            : throw new Xunit.Sdk.XunitException($"no digest in the push output:\n{push.StandardOutput}");
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"v2/e2e/app/manifests/v1"))
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.DockerManifest));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
            using var response = await client.SendAsync(request);
            await response.ExpectAsync(HttpStatusCode.OK);
            var bytes = await response.Content.ReadAsByteArrayAsync();
            Assert.Equal(pushed, OciHttp.Sha256(bytes));
            Assert.Equal(pushed, response.Headers.GetValues("Docker-Content-Digest").Single());
            var manifest = JsonNode.Parse(bytes)!;
            Assert.Equal(imageId, (string?)manifest["config"]!["digest"]);
            Assert.Equal(3, manifest["layers"]!.AsArray().Count);
            var payloadFound = false;
            foreach (var layer in manifest["layers"]!.AsArray())
            {
                using var blob = await client.GetAsync($"v2/e2e/app/blobs/{(string)layer!["digest"]!}");
                await blob.ExpectAsync(HttpStatusCode.OK);
                var layerBytes = await blob.Content.ReadAsByteArrayAsync();
                Assert.Equal((string)layer["digest"]!, OciHttp.Sha256(layerBytes));
                if (OciImageLayout.ReadFileFromLayer(layerBytes, "data/payload.bin") is { } pushedPayload)
                {
                    Assert.True(payload.AsSpan().SequenceEqual(pushedPayload), "data/payload.bin differs in the pushed layer");
                    payloadFound = true;
                }
            }
            Assert.True(payloadFound, "no pushed layer contains data/payload.bin");
        }

        // Remove, pull by tag: the same image id, and the pushed digest among its repo digests.
        await docker.RunAsync("rmi", image);
        Assert.False((await docker.TryRunAsync("image", "inspect", image)).Succeeded, "the image should be gone after rmi");
        await docker.RunAsync("pull", image);
        Assert.Equal(imageId, await InspectAsync(docker, image, "{{.Id}}"));
        Assert.Contains($"{repository}@{pushed}", await InspectAsync(docker, image, "{{json .RepoDigests}}"));

        // Remove again, pull by digest.
        await docker.RunAsync("rmi", image);
        var byDigest = $"{repository}@{pushed}";
        await docker.RunAsync("pull", byDigest);
        Assert.Equal(imageId, await InspectAsync(docker, byDigest, "{{.Id}}"));
        Assert.Contains(byDigest, await InspectAsync(docker, byDigest, "{{json .RepoDigests}}"));
    }

    [DockerDaemonFact]
    public async Task RegistryMirrorServesDockerHubNamesFromTheDockerIoUpstream()
    {
        DockerDaemon.Require();
        // The real upstream: Debian's docker-registry, holding library/NAME:v1 pushed by skopeo. NAME is unique, so a
        // pull that reached the real Docker Hub (if there were a network) could not find it.
        await using var sandbox = new ContainerToolSandbox("docker-mirror");
        var (layout, image) = OciImageLayout.WriteRandomImage(sandbox.Folder("image"), "v1", seed: 3303, 200 << 10, 100 << 10);
        await using var upstream = await UpstreamDistribution.StartAsync(output);
        var name = $"shadow-e2e-{Guid.NewGuid().ToString("N")[..8]}";
        await sandbox.Skopeo(output).RunAsync("copy", "--dest-tls-verify=false", $"oci:{layout.Root}:v1", $"docker://{upstream.HostPort}/library/{name}:v1");

        // ShadowRegistry with the local docker-registry as its default "docker.io" upstream, and dockerd with it as mirror.
        await using var server = await RegistryServer.StartAsync(
            "--Shadow:Upstreams:docker.io:Url", upstream.BaseAddress.ToString(),
            "--Shadow:Upstreams:docker.io:Default", "true");
        await using var daemon = await DockerDaemon.StartAsync(output, $"http://{server.HostPort}");
        var docker = daemon.Docker(output);
        Assert.Contains($"http://{server.HostPort}/", (await docker.RunAsync("info", "--format", "{{json .RegistryConfig.Mirrors}}")).StandardOutput);

        // A plain Docker Hub name: Docker asks the mirror for library/NAME, ShadowRegistry fetches it from the upstream.
        var seeded = upstream.Log.Length;
        await docker.RunAsync("pull", $"{name}:v1");
        Assert.Equal(image.ConfigDigest, await InspectAsync(docker, $"{name}:v1", "{{.Id}}"));
        Assert.Contains($"{name}@{image.ManifestDigest}", await InspectAsync(docker, $"{name}:v1", "{{json .RepoDigests}}"));

        // The upstream served the manifest and every blob, and only ever got reads.
        var upstreamLog = upstream.Log[seeded..];
        Assert.Contains($"/v2/library/{name}/manifests/", upstreamLog);
        foreach (var digest in image.LayerDigests.Append(image.ConfigDigest))
        {
            Assert.True(upstreamLog.Contains($"/v2/library/{name}/blobs/{digest}"), $"the upstream never served blob {digest}:\n{upstreamLog}");
        }
        foreach (var method in new[] { "PUT", "POST", "PATCH", "DELETE" })
        {
            Assert.DoesNotContain($"\"{method} /v2/", upstreamLog, StringComparison.Ordinal);
        }

        // The same name, by digest, through the ShadowRegistry directly (docker.io names default to the docker.io upstream).
        using var client = server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Head, $"v2/library/{name}/manifests/{image.ManifestDigest}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
        using var response = await client.SendAsync(request);
        await response.ExpectAsync(HttpStatusCode.OK);
    }

    private static async Task<string> InspectAsync(ExternalTool docker, string image, string format) =>
        (await docker.RunAsync("image", "inspect", "--format", format, image)).StandardOutput.Trim();

    [GeneratedRegex(@"v1: digest: (?<digest>sha256:[0-9a-f]{64}) size: [0-9]+")]
    private static partial Regex PushDigest();
}
