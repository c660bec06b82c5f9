using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Observability;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Observability;

/// <summary>A separate https metrics address serves the registry's own certificate, and no registry token is needed there.</summary>
public sealed class MetricsTlsTests : IDisposable
{
    private readonly ScratchDirectory scratch = new("metrics-tls");
    private readonly TestPki pki;

    public MetricsTlsTests() => pki = TestPki.Create(scratch.Path);

    public void Dispose()
    {
        pki.Dispose();
        scratch.Dispose();
    }

    [Fact]
    public async Task AnHttpsMetricsAddressServesTheRegistryCertificate()
    {
        await using var server = await RegistryServer.StartAsync([.. AuthTestSupport.Args(anonymousPull: false), .. pki.ServerArgs, "--metrics-listen", "https://127.0.0.1:0"]);
        var url = Assert.Single(server.Services.GetRequiredService<MetricsServer>().Urls);
        Assert.StartsWith("https://", url);
        X509Certificate2? served = null;
        using var handler = pki.TrustingHandler();
        var validate = handler.SslOptions.RemoteCertificateValidationCallback!;
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
        {
            served = X509CertificateLoader.LoadCertificate(certificate!.GetRawCertData());
            return validate(sender, certificate, chain, errors);
        };
        using var client = new HttpClient(handler) { BaseAddress = new Uri(url + "/") };

        var scrape = await MetricsScrape.GetAsync(client);
        Assert.True(scrape.Has("shadowregistry_blob_commits_total", ("source", "upload")));
        Assert.Equal(pki.Server.Thumbprint, served!.Thumbprint);
        using var api = await client.GetAsync("v2/");
        Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
    }
}
