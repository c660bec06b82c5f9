using System.Net.Http.Headers;
using System.Net.Security;
using System.Reflection;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ShadowRegistry.Cli;

/// <summary>The HTTP side of <see cref="ChangesCommand"/>: TLS trust, authentication, and reading OCI error bodies.</summary>
internal static class ChangesHttp
{
    // The management API answers small JSON documents; a bound keeps a wrong URL from filling memory.
    private const long MaxResponseBytes = 64 * 1024 * 1024;

    public static HttpClient CreateClient(ChangesOptions options, X509Certificate2Collection? extraCa, string? password)
    {
        var handler = new SocketsHttpHandler
        {
            // The API never redirects; following one would turn a POST into a GET and drop the credentials anyway.
            AllowAutoRedirect = false,
            ConnectTimeout = options.Timeout,
        };
        if (options.Insecure)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        }
        else if (extraCa is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                TrustedWithExtraCa(certificate, chain, errors, extraCa);
        }

        // The command's own token bounds the whole exchange (body included), so HttpClient's timeout is off.
        var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan, MaxResponseContentBufferSize = MaxResponseBytes };
        var version = typeof(ChangesHttp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
        client.DefaultRequestHeaders.UserAgent.ParseAdd($"ShadowRegistry-cli/{version.Split('+')[0]}");
        client.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (options.Token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.Token);
        }
        else if (options.Username is not null)
        {
            var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.Username}:{password}"));
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", basic);
        }
        return client;
    }

    /// <summary>Reads a PEM file of one or more CA certificates; throws with a readable message.</summary>
    public static X509Certificate2Collection LoadCa(string path)
    {
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPemFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new ChangesUsageException($"--ca-cert '{path}': {e.Message}");
        }
        if (collection.Count == 0) throw new ChangesUsageException($"--ca-cert '{path}' holds no PEM certificate");
        return collection;
    }

    /// <summary>
    /// Accepts what the system trusts, or a chain that ends in one of <paramref name="extraCa"/>. Only chain errors
    /// are forgiven: a certificate for another host name still fails.
    /// </summary>
    private static bool TrustedWithExtraCa(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, X509Certificate2Collection extraCa)
    {
        if (errors == SslPolicyErrors.None) return true;
        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is null) return false;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(extraCa);
        // Same as the system check made by SslStream's default; a private CA seldom publishes revocation lists.
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            // The intermediates the server sent along.
            foreach (var element in chain.ChainPolicy.ExtraStore) custom.ChainPolicy.ExtraStore.Add(element);
            foreach (var element in chain.ChainElements) custom.ChainPolicy.ExtraStore.Add(element.Certificate);
        }
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return custom.Build(leaf);
    }

    /// <summary>An OCI error body's entries, or none when the body is not one (e.g. a proxy's HTML page).</summary>
    public static List<(string Code, string Message, JsonNode? Detail)> ReadErrors(string body)
    {
        var errors = new List<(string, string, JsonNode?)>();
        try
        {
            if (JsonNode.Parse(body)?["errors"] is JsonArray array)
            {
                foreach (var entry in array.OfType<JsonObject>())
                {
                    errors.Add((Text(entry["code"]) ?? "UNKNOWN", Text(entry["message"]) ?? "", entry["detail"]));
                }
            }
        }
        catch (JsonException)
        {
        }
        return errors;
    }

    /// <summary>A JSON string's value, or null for anything else (so a server's odd answer cannot throw here).</summary>
    public static string? Text(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;
}
