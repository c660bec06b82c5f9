using System.Formats.Tar;
using System.Net;
using System.Net.Http.Headers;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// containerd against the real registry on Kestrel: each test starts its own containerd (Debian's package, as root,
/// private config.toml, root, state and socket; see <see cref="ContainerdDaemon"/>) and drives it with ctr.
/// </summary>
public sealed class ContainerdEndToEndTests(ITestOutputHelper output)
{
    [ContainerdDaemonFact]
    public async Task ImportedImageSurvivesPushRemoveAndPullByTag()
    {
        ContainerdDaemon.Require();
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        await using var daemon = await ContainerdDaemon.StartAsync(output);
        var ctr = daemon.Ctr(output);

        // An OCI layout (two tar+gzip layers) as an archive; --base-name turns its ref name "v1" into REGISTRY/e2e/ctr:v1.
        var (layout, image) = OciImageLayout.WriteRandomImage(daemon.Scratch.Folder("image"), "v1", seed: 4404, 256 << 10, 64 << 10);
        var archive = daemon.Scratch.FilePath("image.tar");
        await TarFile.CreateFromDirectoryAsync(layout.Root, archive, includeBaseDirectory: false);
        var reference = $"{server.HostPort}/e2e/ctr:v1";
        await ctr.RunAsync("images", "import", "--base-name", $"{server.HostPort}/e2e/ctr", archive);
        Assert.Contains(image.ManifestDigest, await ListAsync(ctr, reference));

        // Push over plain HTTP: the registry holds the very manifest and blobs of the layout.
        await ctr.RunAsync("images", "push", "--plain-http", reference);
        using (var request = new HttpRequestMessage(HttpMethod.Get, "v2/e2e/ctr/manifests/v1"))
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
            using var response = await client.SendAsync(request);
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(image.ManifestDigest, response.Headers.GetValues("Docker-Content-Digest").Single());
            var manifest = await response.Content.ReadAsByteArrayAsync();
            Assert.True(image.Manifest.AsSpan().SequenceEqual(manifest), "the pushed manifest differs from the layout's");
        }
        foreach (var digest in image.LayerDigests.Append(image.ConfigDigest))
        {
            using var blob = await client.GetAsync($"v2/e2e/ctr/blobs/{digest}");
            await blob.ExpectAsync(HttpStatusCode.OK);
            var bytes = await blob.Content.ReadAsByteArrayAsync();
            Assert.True(layout.ReadBlob(digest).AsSpan().SequenceEqual(bytes), $"blob {digest} differs");
        }

        // Remove the image and its content, then pull by tag: the same manifest digest comes back (and unpacks).
        await ctr.RunAsync("images", "rm", "--sync", reference);
        Assert.DoesNotContain(reference, await ListAsync(ctr, reference));
        await ctr.RunAsync("content", "prune", "references");
        await ctr.RunAsync("images", "pull", "--plain-http", reference);
        Assert.Contains(image.ManifestDigest, await ListAsync(ctr, reference));
        await ctr.RunAsync("images", "check", $"name=={reference}");
    }

    [ContainerdDaemonFact]
    public async Task HostsTomlMirrorServesDockerIoNamesWithTheNamespaceQuery()
    {
        ContainerdDaemon.Require();
        // The real upstream: Debian's docker-registry, holding library/NAME:v1 pushed by skopeo (NAME unique, see Docker's test).
        await using var sandbox = new ContainerToolSandbox("ctr-mirror");
        var (layout, image) = OciImageLayout.WriteRandomImage(sandbox.Folder("image"), "v1", seed: 5505, 128 << 10, 64 << 10);
        await using var upstream = await UpstreamDistribution.StartAsync(output);
        var name = $"shadow-e2e-{Guid.NewGuid().ToString("N")[..8]}";
        await sandbox.Skopeo(output).RunAsync("copy", "--dest-tls-verify=false", $"oci:{layout.Root}:v1", $"docker://{upstream.HostPort}/library/{name}:v1");

        // ShadowRegistry's "docker.io" upstream is the local docker-registry (not the default: ?ns=docker.io selects it).
        await using var server = await RegistryServer.StartAsync(
            "--Shadow:Upstreams:docker.io:Url", upstream.BaseAddress.ToString());
        await using var daemon = await ContainerdDaemon.StartAsync(output);
        var ctr = daemon.Ctr(output);

        var hostsDir = daemon.Scratch.Folder("certs.d");
        File.WriteAllText(Path.Combine(daemon.Scratch.Folder("certs.d", "docker.io"), "hosts.toml"), $"""
            server = "https://registry-1.docker.io"

            [host."http://{server.HostPort}"]
              capabilities = ["pull", "resolve"]
            """);

        var seeded = upstream.Log.Length;
        var reference = $"docker.io/library/{name}:v1";
        await ctr.RunAsync("images", "pull", "--hosts-dir", hostsDir, reference);
        Assert.Contains(image.ManifestDigest, await ListAsync(ctr, reference));

        // ShadowRegistry got library/NAME?ns=docker.io and fetched manifest and blobs from the upstream.
        var upstreamLog = upstream.Log[seeded..];
        Assert.Contains($"/v2/library/{name}/manifests/", upstreamLog);
        foreach (var digest in image.LayerDigests.Append(image.ConfigDigest))
        {
            Assert.True(upstreamLog.Contains($"/v2/library/{name}/blobs/{digest}"), $"the upstream never served blob {digest}:\n{upstreamLog}");
        }

        // Without ?ns the name selects no upstream (there is no default one): the ns query is what routed the pull.
        using var client = server.CreateClient();
        using var withoutNs = new HttpRequestMessage(HttpMethod.Head, $"v2/library/{name}/manifests/v1");
        withoutNs.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
        using (var response = await client.SendAsync(withoutNs))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        using var withNs = new HttpRequestMessage(HttpMethod.Head, $"v2/library/{name}/manifests/v1?ns=docker.io");
        withNs.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciHttp.OciManifest));
        using (var response = await client.SendAsync(withNs))
        {
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(image.ManifestDigest, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
    }

    /// <summary>ctr's image list lines for <paramref name="reference"/> (name, type, digest, size, platforms).</summary>
    private static async Task<string> ListAsync(ExternalTool ctr, string reference) =>
        (await ctr.RunAsync("images", "ls", $"name=={reference}")).StandardOutput;
}
