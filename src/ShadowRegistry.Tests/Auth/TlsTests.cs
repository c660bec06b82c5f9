using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>Kestrel serving HTTPS with a PEM certificate and key from configuration.</summary>
public sealed class TlsTests : IDisposable
{
    private readonly ScratchDirectory scratch = new("tls");
    private readonly TestPki pki;

    public TlsTests() => pki = TestPki.Create(scratch.Path);

    public void Dispose()
    {
        pki.Dispose();
        scratch.Dispose();
    }

    [Fact]
    public async Task RegistryServesTheConfiguredCertificateAndChainWithAuthentication()
    {
        await using var server = await RegistryServer.StartAsync([.. Args(anonymousPull: false), .. pki.ServerArgs]);
        Assert.Equal("https", server.BaseAddress.Scheme);

        X509Certificate2? served = null;
        X509Certificate2[] chainSent = [];
        using var handler = pki.TrustingHandler();
        var validate = handler.SslOptions.RemoteCertificateValidationCallback!;
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
        {
            served = X509CertificateLoader.LoadCertificate(certificate!.GetRawCertData());
            chainSent = chain?.ChainPolicy.ExtraStore.Cast<X509Certificate2>().ToArray() ?? [];
            return validate(sender, certificate, chain, errors);
        };
        using var client = new HttpClient(handler) { BaseAddress = server.BaseAddress };

        // The challenge's realm is derived from the request, so it is https too.
        using var probe = await client.GetAsync("v2/");
        Assert.Equal(HttpStatusCode.Unauthorized, probe.StatusCode);
        Assert.Equal($"https://{server.HostPort}/auth/token", BearerChallenge(probe)["realm"]);
        Assert.Equal(pki.Server.Thumbprint, served!.Thumbprint);
        Assert.Contains(chainSent, certificate => certificate.Thumbprint == pki.Intermediate.Thumbprint);

        var token = await TokenAsync(client, Writer, "repository:tls/app:pull,push");
        client.DefaultRequestHeaders.Authorization = new("Bearer", token);
        var (manifest, _) = await client.PushImageAsync("tls/app", "v1", seed: 21);
        using var get = await client.GetAsync("v2/tls/app/manifests/v1");
        Assert.Equal(manifest, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task ClientsThatDoNotTrustTheCaAreRefusedByTheirOwnVerification()
    {
        await using var server = await RegistryServer.StartAsync(pki.ServerArgs);
        using var client = new HttpClient { BaseAddress = server.BaseAddress };
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("v2/"));
        Assert.IsType<System.Security.Authentication.AuthenticationException>(error.InnerException);
    }

    [Fact]
    public async Task KestrelsOwnDefaultCertificateSettingsWorkToo()
    {
        await using var server = await RegistryServer.StartAsync(
            "--urls", "https://127.0.0.1:0",
            "--Kestrel:Certificates:Default:Path", pki.CertificatePath,
            "--Kestrel:Certificates:Default:KeyPath", pki.KeyPath);
        X509Certificate2? served = null;
        using var handler = pki.TrustingHandler();
        var validate = handler.SslOptions.RemoteCertificateValidationCallback!;
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
        {
            served = X509CertificateLoader.LoadCertificate(certificate!.GetRawCertData());
            return validate(sender, certificate, chain, errors);
        };
        using var client = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        using var probe = await client.GetAsync("v2/");
        await probe.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(pki.Server.Thumbprint, served!.Thumbprint);
    }
}
