using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ShadowRegistry.Auth;

/// <summary>Settings under "Registry:Tls": the PEM certificate (chain) and key Kestrel serves https:// URLs with.</summary>
public sealed class TlsOptions
{
    public const string Section = "Registry:Tls";

    /// <summary>PEM file with the server certificate first, optionally followed by intermediates (and the key, if <see cref="KeyPath"/> is unset).</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM file with the certificate's private key (unencrypted, or encrypted PKCS#8 with <see cref="KeyPassword"/>).</summary>
    public string? KeyPath { get; set; }

    public string? KeyPassword { get; set; }
}

public static class TlsSetup
{
    /// <summary>
    /// With <c>Registry:Tls:CertificatePath</c> set, every https:// endpoint (from <c>--listen</c>/<c>urls</c>) serves
    /// that certificate and its chain. The files are read at startup, so a bad path or key stops the registry at once.
    /// </summary>
    public static WebApplicationBuilder AddRegistryTls(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(TlsOptions.Section).Get<TlsOptions>();
        if (string.IsNullOrEmpty(options?.CertificatePath)) return builder;
        var (certificate, chain) = Load(options);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https =>
        {
            https.ServerCertificate = certificate;
            https.ServerCertificateChain = chain;
        }));
        return builder;
    }

    public static (X509Certificate2 Certificate, X509Certificate2Collection Chain) Load(TlsOptions options)
    {
        var certificatePath = options.CertificatePath!;
        X509Certificate2 certificate;
        var chain = new X509Certificate2Collection();
        try
        {
            certificate = string.IsNullOrEmpty(options.KeyPassword)
                ? X509Certificate2.CreateFromPemFile(certificatePath, string.IsNullOrEmpty(options.KeyPath) ? null : options.KeyPath)
                : X509Certificate2.CreateFromEncryptedPemFile(certificatePath, options.KeyPassword, string.IsNullOrEmpty(options.KeyPath) ? null : options.KeyPath);
            chain.ImportFromPemFile(certificatePath);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidOperationException(
                $"{TlsOptions.Section}: cannot load the certificate '{certificatePath}' with key '{options.KeyPath ?? "(in the certificate file)"}': {e.Message}", e);
        }
        if (!certificate.HasPrivateKey)
            throw new InvalidOperationException($"{TlsOptions.Section}: no private key for '{certificatePath}'; set KeyPath");
        // The leaf is served on its own; what follows it in the file is the chain sent along.
        var intermediates = new X509Certificate2Collection();
        foreach (var entry in chain)
        {
            if (entry.Thumbprint != certificate.Thumbprint) intermediates.Add(entry);
        }
        if (OperatingSystem.IsWindows())
        {
            // SChannel cannot use an ephemeral PEM key; a PKCS#12 round trip gives it a persisted one.
            certificate = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
        }
        return (certificate, intermediates);
    }
}
