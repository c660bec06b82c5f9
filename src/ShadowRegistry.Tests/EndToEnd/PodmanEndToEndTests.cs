using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// podman against the real registry on Kestrel. podman runs on a private vfs storage (own --root, --runroot, --tmpdir,
/// registries.conf, containers.conf, storage.conf, auth file) so it neither reads nor touches the machine's images.
/// The image is built by <c>podman build</c> from a Containerfile <c>FROM scratch</c> + <c>COPY</c>: no base image,
/// no network, no RUN step (so no container is ever started). Run over the filesystem driver and each object store.
/// </summary>
public sealed class PodmanEndToEndTests(ITestOutputHelper output)
{
    /// <summary>On the filesystem driver and on each object store (through its emulator).</summary>
    [SkippableTheory]
    [MemberData(nameof(ObjectStores.AllDrivers), MemberType = typeof(ObjectStores))]
    public async Task BuiltImageSurvivesPushRemoveAndPullWithTheSameDigest(string driver)
    {
        var storage = ObjectStores.Arguments(driver);
        await using var sandbox = new ContainerToolSandbox("podman");
        var podman = sandbox.Podman(output);
        await using var server = await RegistryServer.StartAsync(storage);
        using var client = server.CreateClient();

        var payload = new byte[256 * 1024];
        new Random(7).NextBytes(payload);
        var context = sandbox.Folder("context");
        File.WriteAllBytes(Path.Combine(context, "payload.bin"), payload);
        File.WriteAllText(Path.Combine(context, "hello.txt"), "hello from the ShadowRegistry end-to-end tests\n");
        File.WriteAllText(Path.Combine(context, "Containerfile"), """
            FROM scratch
            COPY payload.bin /data/payload.bin
            COPY hello.txt /hello.txt
            LABEL org.shadowregistry.e2e=podman
            """);

        var image = $"{server.HostPort}/e2e/podman:v1";
        await podman.RunAsync("build", "--format", "oci", "--file", Path.Combine(context, "Containerfile"), "--tag", image, context);
        var imageId = await InspectAsync(podman, image, "{{.Id}}");

        // Push.
        var digestFile = sandbox.FilePath("pushed.digest");
        await podman.RunAsync("push", "--tls-verify=false", "--signature-policy", sandbox.PolicyPath, "--digestfile", digestFile, image);
        var pushed = File.ReadAllText(digestFile).Trim();
        Assert.StartsWith("sha256:", pushed);

        // The registry holds that manifest, its config is the image podman built, and its layer has our files.
        var manifestBytes = await GetManifestAsync(client, "e2e/podman", "v1", pushed);
        Assert.Equal(pushed, OciImageLayout.Sha256(manifestBytes));
        Assert.Equal(manifestBytes, await GetManifestAsync(client, "e2e/podman", pushed, pushed));
        var manifest = JsonNode.Parse(manifestBytes)!;
        Assert.Equal("sha256:" + imageId, (string?)manifest["config"]!["digest"]);
        var layers = manifest["layers"]!.AsArray();
        Assert.NotEmpty(layers);
        byte[]? pushedPayload = null;
        byte[]? pushedHello = null;
        foreach (var layer in layers)
        {
            var digest = (string)layer!["digest"]!;
            using var blob = await client.GetAsync($"v2/e2e/podman/blobs/{digest}");
            Assert.Equal(HttpStatusCode.OK, blob.StatusCode);
            var bytes = await blob.Content.ReadAsByteArrayAsync();
            Assert.Equal(digest, OciImageLayout.Sha256(bytes));
            Assert.Equal((long)layer["size"]!, bytes.LongLength);
            pushedPayload ??= OciImageLayout.ReadFileFromLayer(bytes, "data/payload.bin");
            pushedHello ??= OciImageLayout.ReadFileFromLayer(bytes, "hello.txt");
        }
        Assert.True(pushedPayload is not null, "no layer in the pushed image contains data/payload.bin");
        Assert.True(payload.AsSpan().SequenceEqual(pushedPayload), "data/payload.bin differs in the pushed layer");
        Assert.Equal("hello from the ShadowRegistry end-to-end tests\n", System.Text.Encoding.UTF8.GetString(pushedHello!));

        // Remove the local image: it is gone.
        await podman.RunAsync("rmi", image);
        var exists = await podman.TryRunAsync("image", "exists", image);
        Assert.True(exists.ExitCode == 1, $"the image should be gone after rmi.\n{exists.Describe()}");

        // Pull by tag: the same image (config digest) arrives under the same manifest digest.
        await podman.RunAsync("pull", "--tls-verify=false", "--signature-policy", sandbox.PolicyPath, image);
        Assert.Equal(imageId, await InspectAsync(podman, image, "{{.Id}}"));
        Assert.Equal(pushed, await InspectAsync(podman, image, "{{.Digest}}"));
        Assert.Contains($"{server.HostPort}/e2e/podman@{pushed}", await InspectAsync(podman, image, "{{range .RepoDigests}}{{.}} {{end}}"));
        Assert.Equal("podman", await InspectAsync(podman, image, "{{index .Labels \"org.shadowregistry.e2e\"}}"));

        // Pull by digest after removing it again.
        await podman.RunAsync("rmi", image);
        var byDigest = $"{server.HostPort}/e2e/podman@{pushed}";
        await podman.RunAsync("pull", "--tls-verify=false", "--signature-policy", sandbox.PolicyPath, byDigest);
        Assert.Equal(imageId, await InspectAsync(podman, byDigest, "{{.Id}}"));
        Assert.Equal(pushed, await InspectAsync(podman, byDigest, "{{.Digest}}"));
    }

    private static async Task<string> InspectAsync(ExternalTool podman, string image, string format) =>
        (await podman.RunAsync("image", "inspect", "--format", format, image)).StandardOutput.Trim();

    private static async Task<byte[]> GetManifestAsync(HttpClient client, string repository, string reference, string expectedDigest)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{reference}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.oci.image.manifest.v1+json"));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.docker.distribution.manifest.v2+json"));
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expectedDigest, response.Headers.GetValues("Docker-Content-Digest").Single());
        return await response.Content.ReadAsByteArrayAsync();
    }
}
