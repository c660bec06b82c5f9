using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace ShadowRegistry.Auth;

/// <summary>Why a login attempt was not checked, and when to try again.</summary>
public sealed record LoginThrottled(LoginThrottleScope Scope, TimeSpan RetryAfter);

public enum LoginThrottleScope
{
    /// <summary>Too many failed logins for this user name.</summary>
    User,

    /// <summary>Too many failed logins from this client address.</summary>
    Address,
}

/// <summary>
/// Counts failed logins per user name and per client address in fixed windows (<see cref="AuthOptions.FailedLoginWindow"/>)
/// with the framework's partitioned rate limiter. Only failures use up the allowance; every attempt looks first, so
/// once <see cref="AuthOptions.FailedLoginLimit"/> is reached the password is not even hashed. The two counts are
/// separate on purpose: guessing one user's password from many addresses stops at that user, and one address
/// guessing many users stops at that address, while other users from other addresses are never affected.
/// </summary>
public sealed class LoginThrottle : IDisposable
{
    // Made at the first failure: the limiter runs a timer (every 100 ms, for as long as it lives), which a registry
    // nobody fails to log in to never needs, and whose first start costs a thread at start-up.
    private readonly Lazy<PartitionedRateLimiter<string>>? failures;
    private readonly TimeSpan window;
    private readonly ILogger<LoginThrottle> logger;
    private volatile bool disposed;

    public LoginThrottle(IOptions<AuthOptions> options, ILogger<LoginThrottle> logger)
    {
        var limit = options.Value.FailedLoginLimit;
        window = options.Value.FailedLoginWindow;
        this.logger = logger;
        if (limit <= 0) return;
        // No queue: an attempt over the limit is answered at once. Manual replenishment lets the partitioned limiter's
        // own timer renew every window (one timer in all, not one per user or address).
        failures = new(() => PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetFixedWindowLimiter(key, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = limit,
            Window = window,
            QueueLimit = 0,
            AutoReplenishment = false,
        }), StringComparer.Ordinal));
    }

    /// <summary>Null when an attempt for <paramref name="user"/> from <paramref name="address"/> may be checked.</summary>
    public LoginThrottled? Check(string user, IPAddress? address)
    {
        // No failure yet, so nothing to count against.
        if (failures is not { IsValueCreated: true }) return null;
        if (AddressKey(address) is { } addressKey && RetryAfter(addressKey) is { } addressWait) return new LoginThrottled(LoginThrottleScope.Address, addressWait);
        return RetryAfter(UserKey(user)) is { } userWait ? new LoginThrottled(LoginThrottleScope.User, userWait) : null;
    }

    /// <summary>Counts a failed login against the user name and the address.</summary>
    public void RecordFailure(string user, IPAddress? address)
    {
        if (failures is null) return;
        if (AddressKey(address) is { } addressKey && Consume(addressKey))
            logger.LogWarning("Failed-login limit reached for address {Address}: its logins get 429 for up to {Window}", addressKey[AddressPrefix.Length..], window);
        if (Consume(UserKey(user)))
            logger.LogWarning("Failed-login limit reached for user {User}: logins as that user get 429 for up to {Window}", user, window);
    }

    public void Dispose()
    {
        disposed = true;
        if (failures is { IsValueCreated: true }) failures.Value.Dispose();
    }

    /// <summary>
    /// The partition an address counts in. An IPv6 client usually has a whole /64 to pick addresses from, so that is
    /// what counts as one address. Null (no address known, e.g. a Unix socket) leaves only the per-user count.
    /// </summary>
    internal static string? AddressKey(IPAddress? address)
    {
        if (address is null) return null;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return AddressPrefix + address;
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return $"{AddressPrefix}{new IPAddress(bytes)}/64";
    }

    private const string AddressPrefix = "address:";

    private static string UserKey(string user) => "user:" + user;

    private TimeSpan? RetryAfter(string key)
    {
        // Zero permits asks "is any left?" without using one up.
        using var lease = Acquire(key, 0);
        if (lease.IsAcquired) return null;
        return lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : window;
    }

    /// <summary>Uses up one permit; true when that was the last one.</summary>
    private bool Consume(string key)
    {
        using var lease = Acquire(key, 1);
        return lease.IsAcquired && failures!.Value.GetStatistics(key)?.CurrentAvailablePermits == 0;
    }

    private RateLimitLease Acquire(string key, int permits)
    {
        try
        {
            return failures!.Value.AttemptAcquire(key, permits);
        }
        catch (ObjectDisposedException) when (!disposed)
        {
            // The partitioned limiter drops partitions idle for a while on its timer, and may dispose one between
            // looking it up and acquiring from it; the retry then gets a fresh partition.
            return failures!.Value.AttemptAcquire(key, permits);
        }
    }
}
