using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ShadowRegistry.Tests.Auth;

/// <summary>
/// A throwaway PKI made at test time: a root CA, an intermediate CA, and a server certificate for 127.0.0.1 (IP SAN) and
/// localhost signed by the intermediate. Written as PEM: the root as <c>ca.crt</c> alone in <see cref="ClientCertDirectory"/>
/// (what skopeo/podman --cert-dir expect), and <c>server.crt</c> (leaf, then intermediate) + <c>server.key</c> for the
/// registry, so a client only succeeds if the registry sends the intermediate along.
/// </summary>
public sealed class TestPki : IDisposable
{
    private TestPki(string folder, X509Certificate2 ca, X509Certificate2 server)
    {
        Folder = folder;
        Ca = ca;
        Server = server;
        ClientCertDirectory = Path.Combine(folder, "client-certs");
        CaPath = Path.Combine(ClientCertDirectory, "ca.crt");
        CertificatePath = Path.Combine(folder, "server.crt");
        KeyPath = Path.Combine(folder, "server.key");
    }

    public string Folder { get; }

    public X509Certificate2 Ca { get; }

    public X509Certificate2 Server { get; }

    /// <summary>The CA that signed <see cref="Server"/>; only the root (<see cref="Ca"/>) is trusted by clients.</summary>
    public X509Certificate2 Intermediate { get; private init; } = null!;

    /// <summary>A folder holding only ca.crt, for --cert-dir / --dest-cert-dir.</summary>
    public string ClientCertDirectory { get; }

    public string CaPath { get; }

    public string CertificatePath { get; }

    public string KeyPath { get; }

    /// <summary>Command-line configuration serving https://127.0.0.1:0 with this certificate.</summary>
    public string[] ServerArgs =>
        ["--urls", "https://127.0.0.1:0", "--Registry:Tls:CertificatePath", CertificatePath, "--Registry:Tls:KeyPath", KeyPath];

    public static TestPki Create(string folder)
    {
        var now = DateTimeOffset.UtcNow;
        var run = Guid.NewGuid().ToString("N")[..8];
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest($"CN=ShadowRegistry Test Root CA {run}", caKey, HashAlgorithmName.SHA256);
        AddCaExtensions(caRequest, pathLength: 1);
        var ca = caRequest.CreateSelfSigned(now.AddHours(-1), now.AddDays(2));

        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = new CertificateRequest($"CN=ShadowRegistry Test Intermediate CA {run}", intermediateKey, HashAlgorithmName.SHA256);
        AddCaExtensions(intermediateRequest, pathLength: 0);
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var intermediatePublic = intermediateRequest.Create(ca, now.AddHours(-1), now.AddDays(2), RandomNumberGenerator.GetBytes(16));
        using var intermediate = intermediatePublic.CopyWithPrivateKey(intermediateKey);

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var serverRequest = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        serverRequest.CertificateExtensions.Add(names.Build(critical: false));
        serverRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        serverRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        serverRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(serverRequest.PublicKey, false));
        serverRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(intermediate, true, false));
        using var issued = serverRequest.Create(intermediate, now.AddHours(-1), now.AddDays(1), RandomNumberGenerator.GetBytes(16));
        var server = issued.CopyWithPrivateKey(serverKey);

        var pki = new TestPki(folder, ca, server) { Intermediate = X509CertificateLoader.LoadCertificate(intermediate.RawData) };
        Directory.CreateDirectory(pki.ClientCertDirectory);
        File.WriteAllText(pki.CaPath, ca.ExportCertificatePem());
        // As a CA hands them out: the leaf, then the intermediate; the root stays with the clients.
        File.WriteAllText(pki.CertificatePath, server.ExportCertificatePem() + "\n" + intermediate.ExportCertificatePem());
        File.WriteAllText(pki.KeyPath, serverKey.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(pki.KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return pki;
    }

    private static void AddCaExtensions(CertificateRequest request, int pathLength)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
    }

    /// <summary>A handler that trusts this CA only (and still checks the host name).</summary>
    public SocketsHttpHandler TrustingHandler() => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, sent, errors) =>
            {
                if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false;
                using var chain = new X509Chain();
                // Only what the server sent besides its leaf may complete the path to the trusted root.
                if (sent is not null) chain.ChainPolicy.ExtraStore.AddRange(sent.ChainPolicy.ExtraStore);
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(Ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                return chain.Build(presented);
            },
        },
    };

    public void Dispose()
    {
        Ca.Dispose();
        Intermediate.Dispose();
        Server.Dispose();
    }
}
