using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace ShadowRegistry.Auth;

/// <summary>
/// Checks a user name and password against the configured users. A password hash is deliberately slow, and CI
/// logs in by the hundred at once, so: concurrent checks of the same credentials share one computation, and a
/// success is remembered for <see cref="AuthOptions.CredentialCacheLifetime"/> as an HMAC of the credentials under a
/// random per-process key (nothing reusable is kept). Unknown users cost as much as known ones.
/// </summary>
public sealed class CredentialVerifier
{
    private readonly Dictionary<string, RegistryUser> users;
    private readonly TimeSpan cacheLifetime;
    private readonly TimeProvider time;
    private readonly byte[] cacheKey = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<string, CachedSuccess> successes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Task<bool>>> inFlight = new(StringComparer.Ordinal);
    private readonly Lazy<string> decoyHash;

    public CredentialVerifier(IOptions<AuthOptions> options, TimeProvider time)
    {
        users = options.Value.Users.Select(RegistryUser.From).ToDictionary(user => user.Name, StringComparer.Ordinal);
        cacheLifetime = options.Value.CredentialCacheLifetime;
        // Checking an unknown name costs what checking a known one does: a hash as strong as the users' own.
        var iterations = users.Values.Select(user => PasswordHash.IterationsOf(user.PasswordHash)).Max() ?? PasswordHash.DefaultIterations;
        decoyHash = new Lazy<string>(() => PasswordHash.Hash(Convert.ToHexString(RandomNumberGenerator.GetBytes(16)), iterations));
        this.time = time;
    }

    public RegistryUser? Find(string name) => users.GetValueOrDefault(name);

    /// <summary>The user, or null when the name is unknown or the password wrong (the caller cannot tell which).</summary>
    public async Task<RegistryUser?> VerifyAsync(string name, string password)
    {
        var mac = HMACSHA256.HashData(cacheKey, Encoding.UTF8.GetBytes(name + "\0" + password));
        if (!users.TryGetValue(name, out var user))
        {
            await Task.Run(() => PasswordHash.Verify(password, decoyHash.Value));
            return null;
        }
        if (successes.TryGetValue(name, out var cached) && cached.Expires > time.GetUtcNow() && CryptographicOperations.FixedTimeEquals(cached.Mac, mac))
            return user;

        var key = name + "\0" + Convert.ToHexString(mac);
        var check = inFlight.GetOrAdd(key, _ => new Lazy<Task<bool>>(() => Task.Run(() => PasswordHash.Verify(password, user.PasswordHash))));
        bool valid;
        try
        {
            valid = await check.Value;
        }
        finally
        {
            inFlight.TryRemove(KeyValuePair.Create(key, check));
        }
        if (!valid) return null;
        if (cacheLifetime > TimeSpan.Zero) successes[name] = new CachedSuccess(mac, time.GetUtcNow() + cacheLifetime);
        return user;
    }

    private sealed record CachedSuccess(byte[] Mac, DateTimeOffset Expires);
}
