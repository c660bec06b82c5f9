using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Changes;

/// <summary>
/// The credential a change can be created with, for the CI job that builds it: user "change/&lt;id&gt;" with a random
/// secret, allowed to push and pull through that change's view ("changes/&lt;id&gt;/**") and nothing else. Valid while
/// the change is live; issuing a new one replaces the old.
/// </summary>
public sealed class ChangeCredentials(ChangeStore store, IOptions<ChangeOptions> options, TimeProvider time) : IChangeCredentials
{
    public static string UserOf(ChangeId id) => IChangeCredentials.UserPrefix + id.Value;

    /// <summary>A fresh secret and the hash to keep in the change's record.</summary>
    public static (string Secret, string Hash) Issue()
    {
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return (secret, Hash(secret));
    }

    public async Task<RegistryUser?> VerifyAsync(string name, string secret, CancellationToken cancellationToken)
    {
        if (!ChangeId.TryParse(name[IChangeCredentials.UserPrefix.Length..], out var id)) return null;
        var stored = await store.GetAsync(id, cancellationToken);
        if (stored is null || stored.Record.IsExpired(time.GetUtcNow()) || stored.Record.CredentialHash is not { } expected) return null;
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Hash(secret)), Encoding.ASCII.GetBytes(expected))) return null;
        RepositoryPattern.TryParse($"{options.Value.PathPrefix}/{id}/**", out var view);
        return new RegistryUser(name, "", CanWrite: true, [view]) { IsChangeCredential = true };
    }

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
