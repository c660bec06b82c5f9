using System.Net;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;
using ShadowRegistry.Hosting;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

public sealed class AuthConfigurationTests
{
    [Fact]
    public async Task AuthenticationIsOffUnlessConfigured()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        using var probe = await client.GetAsync("v2/");
        await probe.ExpectAsync(HttpStatusCode.OK);
        Assert.Empty(probe.Headers.WwwAuthenticate);
        await client.PushImageAsync("no-auth/app", "v1", seed: 1);
        using var token = await client.GetAsync("auth/token");
        Assert.Equal(HttpStatusCode.NotFound, token.StatusCode);
    }

    [Fact]
    public async Task ExplicitlyDisabledStaysOffEvenWithUsers()
    {
        await using var server = await RegistryServer.StartAsync([.. Args(anonymousPull: false), "--Auth:Enabled", "false"]);
        using var client = server.CreateClient();
        await client.PushImageAsync("disabled/app", "v1", seed: 2);
    }

    [Fact]
    public async Task ConfiguringUsersTurnsAuthenticationOn()
    {
        var args = Writer.Arguments(0).ToArray();
        await using var server = await RegistryServer.StartAsync(args);
        using var client = server.CreateClient();
        using var push = await client.PostAsync("v2/users-only/app/blobs/uploads/", null);
        await push.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        // With no key configured a random one signs, and tokens work within this process.
        var token = await TokenAsync(client, Writer, "repository:users-only/app:pull,push");
        using var withToken = await client.SendAsync(HttpMethod.Post, "v2/users-only/app/blobs/uploads/", token);
        await withToken.ExpectAsync(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task ConfiguredRealmIsUsedInChallenges()
    {
        await using var server = await RegistryServer.StartAsync(Args(anonymousPull: true, "--Auth:Realm", "https://auth.example.test/token", "--Auth:Service", "ci-registry"));
        using var client = server.CreateClient();
        using var probe = await client.GetAsync("v2/");
        var challenge = BearerChallenge(probe);
        Assert.Equal("https://auth.example.test/token", challenge["realm"]);
        Assert.Equal("ci-registry", challenge["service"]);
    }

    [Fact]
    public async Task KeyFromAPemFileSignsTokensThatSurviveARestart()
    {
        var folder = Directory.CreateTempSubdirectory("shadowregistry-auth-key");
        try
        {
            var keyPath = Path.Combine(folder.FullName, "token-key.pem");
            using (var ec = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256))
                File.WriteAllText(keyPath, ec.ExportPkcs8PrivateKeyPem());
            string[] args = ["--Auth:Enabled", "true", "--Auth:SigningKey:KeyPath", keyPath, .. Writer.Arguments(0)];

            string token;
            await using (var first = await RegistryServer.StartAsync(args))
            {
                using var client = first.CreateClient();
                token = await TokenAsync(client, Writer, "repository:pem/app:pull,push");
                Assert.StartsWith("eyJhbGciOiJFUzI1NiI", token); // {"alg":"ES256"
            }
            await using var second = await RegistryServer.StartAsync(args);
            using var again = second.CreateClient();
            using var push = await again.SendAsync(HttpMethod.Post, "v2/pem/app/blobs/uploads/", token);
            await push.ExpectAsync(HttpStatusCode.Accepted);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public void PlainPasswordsAndBrokenUsersStopTheRegistryAtStartup()
    {
        var error = Assert.Throws<OptionsValidationException>(() => RegistryApp.Build(
        [
            "--Auth:Users:0:Name", "alice", "--Auth:Users:0:Password", "hunter2",
            "--Auth:Users:1:Name", "bob", "--Auth:Users:1:PasswordHash", "not-a-hash", "--Auth:Users:1:Role", "admin",
            "--Auth:Users:2:Name", "carol", "--Auth:Users:2:PasswordHash", PasswordHash.Hash("pw", 1000), "--Auth:Users:2:Repositories:0", "Team/*",
            "--Auth:Users:3:Name", "carol", "--Auth:Users:3:PasswordHash", PasswordHash.Hash("pw", 1000),
            "--Auth:SigningKey:Secret", "too-short",
        ]));
        var message = error.Message;
        Assert.Contains("plain Password", message);
        Assert.DoesNotContain("hunter2", message);
        Assert.Contains("'bob'): PasswordHash is missing or not a", message);
        Assert.Contains("Role must be 'read' or 'write', not 'admin'", message);
        Assert.Contains("'Team/*' is not a repository pattern", message);
        Assert.Contains("the name is used twice", message);
        Assert.Contains("at least 32 bytes", message);
    }

    [Fact]
    public void UnworkableLimitsStopTheRegistryAtStartup()
    {
        var error = Assert.Throws<OptionsValidationException>(() => RegistryApp.Build(Args(anonymousPull: true,
            "--Auth:MaxConcurrentPasswordChecks", "0", "--Auth:FailedLoginLimit", "-1", "--Auth:MaxTokenRequestBytes", "100")));
        Assert.Contains("Auth:MaxConcurrentPasswordChecks must be between 1 and 1024", error.Message);
        Assert.Contains("Auth:FailedLoginLimit must not be negative", error.Message);
        Assert.Contains("Auth:MaxTokenRequestBytes must be between 1024 and 16777216", error.Message);

        var window = Assert.Throws<OptionsValidationException>(() => RegistryApp.Build(Args(anonymousPull: true, "--Auth:FailedLoginWindow", "00:00:00")));
        Assert.Contains("Auth:FailedLoginWindow must be between 00:00:01 and 1.00:00:00", window.Message);
    }

    [Fact]
    public void UnreadableTlsCertificateStopsTheRegistryAtStartup()
    {
        var error = Assert.Throws<InvalidOperationException>(() => RegistryApp.Build(
            ["--Registry:Tls:CertificatePath", "/nonexistent/server.crt", "--Registry:Tls:KeyPath", "/nonexistent/server.key"]));
        Assert.Contains("Registry:Tls", error.Message);
    }
}
