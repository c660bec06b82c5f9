using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace ShadowRegistry.Auth;

/// <summary>What checking a login found: the user, nothing (unknown user or wrong password), or an attempt not checked at all.</summary>
public sealed record CredentialCheck(RegistryUser? User, LoginThrottled? Throttled)
{
    public static CredentialCheck Refused { get; } = new(null, null);
}

/// <summary>
/// Checks a user name and password against the configured users. A password hash is deliberately slow, and CI
/// logs in by the hundred at once, so: concurrent checks of the same credentials from the same address share one
/// computation; at most <see cref="AuthOptions.MaxConcurrentPasswordChecks"/> hashes run at once, each on a thread
/// of its own rather than one the requests need; a success is remembered for
/// <see cref="AuthOptions.CredentialCacheLifetime"/> as an HMAC of the credentials under a random per-process key
/// (nothing reusable is kept); and failures are counted by <see cref="LoginThrottle"/>, which stops further
/// attempts before any hashing. Unknown users cost as much as known ones.
/// </summary>
public sealed class CredentialVerifier
{
    private readonly Dictionary<string, RegistryUser> users;
    private readonly TimeSpan cacheLifetime;
    private readonly TimeProvider time;
    private readonly LoginThrottle throttle;
    private readonly SemaphoreSlim hashSlots;
    private readonly Func<string, string, Task<bool>> verifyHash;
    // Made on the first login, not at start: the first use of the crypto library loads and initialises OpenSSL
    // (tens of milliseconds), which a registry without logins never needs.
    private readonly Lazy<byte[]> cacheKey = new(() => RandomNumberGenerator.GetBytes(32));
    private readonly ConcurrentDictionary<string, CachedSuccess> successes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Task<CredentialCheck>>> inFlight = new(StringComparer.Ordinal);
    private readonly Lazy<string> decoyHash;

    public CredentialVerifier(IOptions<AuthOptions> options, TimeProvider time, LoginThrottle throttle, IChangeCredentials changeCredentials)
        : this(options, time, throttle, VerifyOnOwnThread)
    {
        this.changeCredentials = changeCredentials;
    }

    private readonly IChangeCredentials? changeCredentials;

    /// <param name="verifyHash">Checks a password against a stored hash; tests replace it to watch how many run at once.</param>
    internal CredentialVerifier(IOptions<AuthOptions> options, TimeProvider time, LoginThrottle throttle, Func<string, string, Task<bool>> verifyHash)
    {
        users = options.Value.Users.Select(RegistryUser.From).ToDictionary(user => user.Name, StringComparer.Ordinal);
        cacheLifetime = options.Value.CredentialCacheLifetime;
        // Checking an unknown name costs what checking a known one does: a hash as strong as the users' own.
        var iterations = users.Values.Select(user => PasswordHash.IterationsOf(user.PasswordHash)).Max() ?? PasswordHash.DefaultIterations;
        decoyHash = new Lazy<string>(() => PasswordHash.Hash(Convert.ToHexString(RandomNumberGenerator.GetBytes(16)), iterations));
        hashSlots = new SemaphoreSlim(Math.Max(1, options.Value.MaxConcurrentPasswordChecks));
        this.time = time;
        this.throttle = throttle;
        this.verifyHash = verifyHash;
    }

    public RegistryUser? Find(string name) => users.GetValueOrDefault(name);

    /// <summary>
    /// The user when the password is right; a refusal when the name is unknown or the password wrong (the caller
    /// cannot tell which); or <see cref="CredentialCheck.Throttled"/> when too many logins failed for the name or
    /// from <paramref name="client"/>. A throttled attempt is not checked, so even the right password is turned
    /// away then: otherwise guessing could go on, merely slower.
    /// </summary>
    public async Task<CredentialCheck> VerifyAsync(string name, string password, IPAddress? client, CancellationToken cancellationToken)
    {
        if (throttle.Check(name, client) is { } throttled) return new CredentialCheck(null, throttled);
        if (changeCredentials is not null && name.StartsWith(IChangeCredentials.UserPrefix, StringComparison.Ordinal))
        {
            // A change's own credential: a random secret, not a password, so a plain hash compare (no PBKDF2) is enough.
            var changeUser = await changeCredentials.VerifyAsync(name, password, cancellationToken);
            if (changeUser is null) throttle.RecordFailure(name, client);
            return changeUser is null ? CredentialCheck.Refused : new CredentialCheck(changeUser, null);
        }
        var mac = HMACSHA256.HashData(cacheKey.Value, Encoding.UTF8.GetBytes(name + "\0" + password));
        var user = users.GetValueOrDefault(name);
        if (user is not null && IsRemembered(name, mac)) return new CredentialCheck(user, null);

        // Shared only with attempts from the same address, so one address's throttling cannot answer for another's.
        var key = string.Join('\0', name, Convert.ToHexString(mac), LoginThrottle.AddressKey(client));
        var check = inFlight.GetOrAdd(key, _ => new Lazy<Task<CredentialCheck>>(() => CheckAsync(name, password, mac, user, client)));
        try
        {
            return await check.Value.WaitAsync(cancellationToken);
        }
        finally
        {
            inFlight.TryRemove(KeyValuePair.Create(key, check));
        }
    }

    private async Task<CredentialCheck> CheckAsync(string name, string password, byte[] mac, RegistryUser? user, IPAddress? client)
    {
        await hashSlots.WaitAsync();
        try
        {
            // Asked again now: failures counted while this attempt waited may have used up the allowance, and a burst
            // of concurrent guesses must not all be hashed. The failure is counted before the slot is given back.
            if (throttle.Check(name, client) is { } throttled) return new CredentialCheck(null, throttled);
            if (user is not null && IsRemembered(name, mac)) return new CredentialCheck(user, null);
            var valid = await verifyHash(password, user?.PasswordHash ?? decoyHash.Value) && user is not null;
            if (!valid)
            {
                throttle.RecordFailure(name, client);
                return CredentialCheck.Refused;
            }
            if (cacheLifetime > TimeSpan.Zero) successes[name] = new CachedSuccess(mac, time.GetUtcNow() + cacheLifetime);
            return new CredentialCheck(user, null);
        }
        finally
        {
            hashSlots.Release();
        }
    }

    private bool IsRemembered(string name, byte[] mac) =>
        successes.TryGetValue(name, out var cached) && cached.Expires > time.GetUtcNow() && CryptographicOperations.FixedTimeEquals(cached.Mac, mac);

    /// <summary>
    /// PBKDF2 holds a core for its whole run; on a thread-pool thread it would hold one of the threads every request
    /// needs (hashes are bounded by the semaphore, so these threads are few).
    /// </summary>
    private static Task<bool> VerifyOnOwnThread(string password, string hash) =>
        Task.Factory.StartNew(() => PasswordHash.Verify(password, hash), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private sealed record CachedSuccess(byte[] Mac, DateTimeOffset Expires);
}
