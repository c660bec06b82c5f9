using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.Tokens;

namespace ShadowRegistry.Auth;

/// <summary>The key tokens are signed and validated with, and the one JWS algorithm it is used with.</summary>
public sealed class TokenSigningKey
{
    public const int MinSecretBytes = 32;

    private TokenSigningKey(SecurityKey key, string algorithm, string description, bool isEphemeral)
    {
        Key = key;
        Algorithm = algorithm;
        Description = description;
        IsEphemeral = isEphemeral;
    }

    public SecurityKey Key { get; }

    /// <summary>HS256, RS256, ES256, ES384 or ES512. Validation accepts only this one.</summary>
    public string Algorithm { get; }

    /// <summary>For logs: the kind of key and where it came from, never key material.</summary>
    public string Description { get; }

    /// <summary>True when no key was configured and a random one was made for this process.</summary>
    public bool IsEphemeral { get; }

    public SigningCredentials Credentials => new(Key, Algorithm);

    /// <summary>Loads the configured key; throws <see cref="InvalidOperationException"/> with a readable reason.</summary>
    public static TokenSigningKey Load(SigningKeyOptions options)
    {
        var hasSecret = !string.IsNullOrEmpty(options.Secret);
        var hasFile = !string.IsNullOrEmpty(options.KeyPath);
        if (hasSecret && hasFile)
            throw new InvalidOperationException("Auth:SigningKey: set either Secret or KeyPath, not both");
        if (hasSecret) return FromSecret(Encoding.UTF8.GetBytes(options.Secret!), "HMAC secret from configuration", false);
        if (hasFile) return FromPemFile(options.KeyPath!);
        return FromSecret(RandomNumberGenerator.GetBytes(64), "random HMAC key for this process", true);
    }

    public static TokenSigningKey FromSecret(byte[] secret, string description = "HMAC secret", bool isEphemeral = false)
    {
        if (secret.Length < MinSecretBytes)
            throw new InvalidOperationException($"Auth:SigningKey:Secret must be at least {MinSecretBytes} bytes (e.g. the output of 'openssl rand -base64 48')");
        return new TokenSigningKey(new SymmetricSecurityKey(secret), SecurityAlgorithms.HmacSha256, description, isEphemeral);
    }

    public static TokenSigningKey FromPemFile(string path)
    {
        string pem;
        try
        {
            pem = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"Auth:SigningKey:KeyPath '{path}' cannot be read: {e.Message}", e);
        }
        return FromPem(pem, $"key file {path}");
    }

    /// <summary>An RSA or EC private key in PEM (PKCS#8, PKCS#1 or SEC1).</summary>
    public static TokenSigningKey FromPem(string pem, string description = "PEM key")
    {
        if (pem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
            throw new InvalidOperationException($"{description}: encrypted private keys are not supported; protect the file with its permissions instead");
        if (TryRsa(pem) is { } rsa)
        {
            if (rsa.KeySize < 2048) throw new InvalidOperationException($"{description}: RSA keys must have at least 2048 bits, this one has {rsa.KeySize}");
            var key = new RsaSecurityKey(rsa) { KeyId = KeyId(rsa.ExportSubjectPublicKeyInfo()) };
            return new TokenSigningKey(key, SecurityAlgorithms.RsaSha256, $"RSA-{rsa.KeySize} {description}", false);
        }
        var ec = TryEc(pem) ?? throw new InvalidOperationException($"{description}: no RSA or EC private key found (expected an unencrypted PEM private key)");
        var algorithm = ec.KeySize switch
        {
            256 => SecurityAlgorithms.EcdsaSha256,
            384 => SecurityAlgorithms.EcdsaSha384,
            521 => SecurityAlgorithms.EcdsaSha512,
            _ => throw new InvalidOperationException($"{description}: EC keys must be on P-256, P-384 or P-521"),
        };
        var ecKey = new ECDsaSecurityKey(ec) { KeyId = KeyId(ec.ExportSubjectPublicKeyInfo()) };
        return new TokenSigningKey(ecKey, algorithm, $"EC P-{ec.KeySize} {description}", false);
    }

    private static RSA? TryRsa(string pem)
    {
        var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(pem);
            // A public key alone imports too, but cannot sign.
            rsa.ExportRSAPrivateKey();
            return rsa;
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            rsa.Dispose();
            return null;
        }
    }

    private static ECDsa? TryEc(string pem)
    {
        var ec = ECDsa.Create();
        try
        {
            ec.ImportFromPem(pem);
            ec.ExportECPrivateKey();
            return ec;
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            ec.Dispose();
            return null;
        }
    }

    /// <summary>A short fingerprint of the public key, so a verifier holding several keys can tell which one signed.</summary>
    private static string KeyId(byte[] subjectPublicKeyInfo) =>
        Base64UrlEncoder.Encode(SHA256.HashData(subjectPublicKeyInfo))[..16];
}
