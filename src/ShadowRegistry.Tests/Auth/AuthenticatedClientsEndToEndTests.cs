using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>
/// skopeo and podman against the registry in restricted mode over HTTPS, with TLS verification on: they trust only a
/// root CA made for the test (in a --cert-dir), log in with a user's credentials, get tokens from the built-in token
/// endpoint and push and pull. A missing tool fails the test.
/// </summary>
public sealed class AuthenticatedClientsEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private ContainerToolSandbox sandbox = null!;
    private TestPki pki = null!;
    private RegistryServer server = null!;

    public async Task InitializeAsync()
    {
        ExternalTool.Require("skopeo");
        ExternalTool.Require("podman");
        sandbox = new ContainerToolSandbox("auth");
        pki = TestPki.Create(sandbox.Folder("pki"));
        server = await RegistryServer.StartAsync([.. Args(anonymousPull: false), .. pki.ServerArgs]);
    }

    public async Task DisposeAsync()
    {
        if (server is not null) await server.DisposeAsync();
        pki?.Dispose();
        if (sandbox is not null) await sandbox.DisposeAsync();
    }

    private string Docker(string repositoryAndTag) => $"docker://{server.HostPort}/{repositoryAndTag}";

    private static string Creds(TestUser user) => $"{user.Name}:{user.Password}";

    [Fact]
    public async Task SkopeoPushesAndPullsWithCredentialsOverVerifiedTls()
    {
        var skopeo = sandbox.Skopeo(output);
        var (_, image) = OciImageLayout.WriteRandomImage(sandbox.Folder("source"), "v1", seed: 31, 64 * 1024, 128 * 1024);
        var certDir = pki.ClientCertDirectory;

        // Push as the writer (whose password has a colon and a non-ASCII letter in it).
        var digestFile = sandbox.FilePath("pushed.digest");
        await skopeo.RunAsync("copy", "--dest-cert-dir", certDir, "--dest-tls-verify=true", "--dest-creds", Creds(Writer),
            "--digestfile", digestFile, $"oci:{Path.Combine(sandbox.Root, "source")}:v1", Docker("e2e/auth-skopeo:v1"));
        Assert.Equal(image.ManifestDigest, File.ReadAllText(digestFile).Trim());

        // Read as the reader: inspect and copy back out, byte-identical.
        var inspected = JsonNode.Parse((await skopeo.RunAsync("inspect", "--cert-dir", certDir, "--tls-verify=true", "--creds", Creds(Reader), Docker("e2e/auth-skopeo:v1"))).StandardOutput)!;
        Assert.Equal(image.ManifestDigest, (string?)inspected["Digest"]);
        var copy = sandbox.Folder("copy");
        await skopeo.RunAsync("copy", "--src-cert-dir", certDir, "--src-creds", Creds(Reader), "--preserve-digests",
            Docker("e2e/auth-skopeo:v1"), $"oci:{copy}:v1");
        Assert.Equal(image.Manifest, new OciImageLayout(copy).ReadBlob(image.ManifestDigest));

        // The reader may not push; nobody reads without credentials; a wrong password is refused.
        var readerPush = await skopeo.TryRunAsync("copy", "--dest-cert-dir", certDir, "--dest-creds", Creds(Reader),
            $"oci:{Path.Combine(sandbox.Root, "source")}:v1", Docker("e2e/auth-skopeo:reader"));
        Assert.True(readerPush.ExitCode != 0, $"the reader's push should fail.\n{readerPush.Describe()}");
        Assert.Contains("denied", readerPush.StandardError, StringComparison.OrdinalIgnoreCase);

        var anonymous = await skopeo.TryRunAsync("inspect", "--cert-dir", certDir, Docker("e2e/auth-skopeo:v1"));
        Assert.True(anonymous.ExitCode != 0, $"an anonymous read should fail in restricted mode.\n{anonymous.Describe()}");
        Assert.Contains("unauthorized", anonymous.StandardError, StringComparison.OrdinalIgnoreCase);

        var wrong = await skopeo.TryRunAsync("inspect", "--cert-dir", certDir, "--creds", $"{Reader.Name}:wrong", Docker("e2e/auth-skopeo:v1"));
        Assert.True(wrong.ExitCode != 0, $"a wrong password should fail.\n{wrong.Describe()}");
        Assert.Contains("unauthorized", wrong.StandardError, StringComparison.OrdinalIgnoreCase);

        // TLS verification is really on: without the CA the client refuses the registry.
        var untrusted = await skopeo.TryRunAsync("inspect", "--creds", Creds(Reader), Docker("e2e/auth-skopeo:v1"));
        Assert.True(untrusted.ExitCode != 0, $"without the CA, verification should fail.\n{untrusted.Describe()}");
        Assert.Contains("x509", untrusted.StandardError, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task PodmanLogsInPushesAndPullsOverVerifiedTls()
    {
        var podman = sandbox.Podman(output);
        var (_, image) = OciImageLayout.WriteRandomImage(sandbox.Folder("source"), "v1", seed: 32, 96 * 1024);
        var certDir = pki.ClientCertDirectory;
        var reference = $"{server.HostPort}/e2e/auth-podman:v1";

        // Not logged in: restricted mode refuses even the read.
        var before = await podman.TryRunAsync("pull", "--cert-dir", certDir, "--tls-verify=true", "--signature-policy", sandbox.PolicyPath, reference);
        Assert.True(before.ExitCode != 0, $"pulling before login should fail.\n{before.Describe()}");

        var badLogin = await podman.TryRunAsync("login", "--cert-dir", certDir, "--tls-verify=true", "--username", Writer.Name, "--password", "wrong", server.HostPort);
        Assert.True(badLogin.ExitCode != 0, $"a wrong password should not log in.\n{badLogin.Describe()}");

        await podman.RunAsync("login", "--cert-dir", certDir, "--tls-verify=true", "--username", Writer.Name, "--password", Writer.Password, server.HostPort);

        // The image to push comes from an OCI layout on disk; podman prints the ID of what it stored.
        var loaded = await podman.RunAsync("pull", "--signature-policy", sandbox.PolicyPath, $"oci:{Path.Combine(sandbox.Root, "source")}:v1");
        var imageId = loaded.StandardOutput.Trim().Split('\n').Last().Trim();
        Assert.Equal(image.ConfigDigest, "sha256:" + imageId);
        await podman.RunAsync("tag", imageId, reference);
        var digestFile = sandbox.FilePath("pushed.digest");
        await podman.RunAsync("push", "--cert-dir", certDir, "--tls-verify=true", "--signature-policy", sandbox.PolicyPath, "--digestfile", digestFile, reference);
        Assert.StartsWith("sha256:", File.ReadAllText(digestFile).Trim());

        // Gone locally, then pulled back with the stored login: the same image.
        await podman.RunAsync("rmi", "--force", imageId);
        await podman.RunAsync("pull", "--cert-dir", certDir, "--tls-verify=true", "--signature-policy", sandbox.PolicyPath, reference);
        Assert.Equal(imageId, (await podman.RunAsync("image", "inspect", "--format", "{{.Id}}", reference)).StandardOutput.Trim());

        // Logged out: refused again.
        await podman.RunAsync("logout", server.HostPort);
        var after = await podman.TryRunAsync("pull", "--cert-dir", certDir, "--tls-verify=true", "--signature-policy", sandbox.PolicyPath, $"{server.HostPort}/e2e/auth-podman@{File.ReadAllText(digestFile).Trim()}");
        Assert.True(after.ExitCode != 0, $"pulling after logout should fail.\n{after.Describe()}");
    }
}
