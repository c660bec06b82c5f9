using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Tests.Auth;

/// <summary>The verifier's bound on concurrent hashing and its failed-login throttling, driven directly.</summary>
public sealed class CredentialVerifierTests
{
    private static readonly IPAddress AddressA = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress AddressB = IPAddress.Parse("192.0.2.2");
    private static readonly IPAddress AddressC = IPAddress.Parse("192.0.2.3");

    private static IOptions<AuthOptions> Options(int maxConcurrent, int failedLoginLimit) => Microsoft.Extensions.Options.Options.Create(new AuthOptions
    {
        Users =
        [
            new AuthUser { Name = "gate", PasswordHash = PasswordHash.Hash("gate-pw", iterations: 1000), Role = AuthRoles.Write },
            new AuthUser { Name = "reader", PasswordHash = PasswordHash.Hash("reader-pw", iterations: 1000), Role = AuthRoles.Read },
        ],
        MaxConcurrentPasswordChecks = maxConcurrent,
        FailedLoginLimit = failedLoginLimit,
        FailedLoginWindow = TimeSpan.FromHours(1),
    });

    [Fact]
    public async Task NoMoreHashesRunAtOnceThanConfigured()
    {
        var options = Options(maxConcurrent: 2, failedLoginLimit: 0);
        using var throttle = new LoginThrottle(options, NullLogger<LoginThrottle>.Instance);
        var inside = 0;
        var most = 0;
        var started = 0;
        var proceed = new SemaphoreSlim(0);
        async Task<bool> Watched(string password, string hash)
        {
            var now = Interlocked.Increment(ref inside);
            InterlockedMax(ref most, now);
            Interlocked.Increment(ref started);
            // Held until the test lets go, so every attempt not bounded would be in here together.
            await proceed.WaitAsync();
            Interlocked.Decrement(ref inside);
            return PasswordHash.Verify(password, hash);
        }
        var verifier = new CredentialVerifier(options, TimeProvider.System, throttle, Watched);

        // Distinct credentials (wrong passwords, an unknown user, the right password) so none share a computation.
        string[][] attempts = [["gate", "guess-1"], ["gate", "guess-2"], ["nobody", "x"], ["gate", "guess-3"], ["reader", "reader-pw"], ["gate", "guess-4"], ["nobody", "y"], ["gate", "gate-pw"]];
        var checks = attempts.Select(attempt => verifier.VerifyAsync(attempt[0], attempt[1], AddressA, CancellationToken.None)).ToArray();

        // VerifyAsync runs synchronously up to the hash or the wait for a slot: unbounded, all eight are inside now.
        Assert.Equal(2, Volatile.Read(ref inside));
        Assert.Equal(2, Volatile.Read(ref started));

        proceed.Release(attempts.Length);
        var results = await Task.WhenAll(checks);
        Assert.Equal(attempts.Length, started);
        Assert.Equal(2, most);
        Assert.Equal(["reader", "gate"], results.Where(result => result.User is not null).Select(result => result.User!.Name));
        Assert.All(results, result => Assert.Null(result.Throttled));
    }

    [Fact]
    public async Task FailuresUpToTheLimitStopFurtherAttemptsPerUserAndPerAddressWithoutHashing()
    {
        var options = Options(maxConcurrent: 1, failedLoginLimit: 3);
        using var throttle = new LoginThrottle(options, NullLogger<LoginThrottle>.Instance);
        var hashes = 0;
        var verifier = new CredentialVerifier(options, TimeProvider.System, throttle, (password, hash) =>
        {
            Interlocked.Increment(ref hashes);
            return Task.FromResult(PasswordHash.Verify(password, hash));
        });
        Task<CredentialCheck> Verify(string user, string password, IPAddress address) => verifier.VerifyAsync(user, password, address, CancellationToken.None);

        // Guessing gate's password from three addresses: three failures for the user, one per address.
        foreach (var address in new[] { AddressA, AddressB, AddressC })
            Assert.Equal(CredentialCheck.Refused, await Verify("gate", "guess-" + address, address));
        Assert.Equal(3, hashes);

        // Now gate is throttled from anywhere, even with the right password, and nothing is hashed.
        var throttledUser = await Verify("gate", "gate-pw", IPAddress.Parse("198.51.100.7"));
        Assert.Null(throttledUser.User);
        Assert.Equal(new LoginThrottled(LoginThrottleScope.User, TimeSpan.FromHours(1)), throttledUser.Throttled);
        Assert.Equal(3, hashes);

        // Another user from one of those addresses (one failure there, below the limit) is unaffected.
        Assert.Equal("reader", (await Verify("reader", "reader-pw", AddressA)).User?.Name);
        Assert.Equal(4, hashes);

        // One address guessing several names (unknown ones cost a hash too) is stopped as an address.
        var guesser = IPAddress.Parse("203.0.113.9");
        foreach (var name in new[] { "admin", "root", "ci" })
            Assert.Equal(CredentialCheck.Refused, await Verify(name, "password", guesser));
        Assert.Equal(7, hashes);
        var throttledAddress = await Verify("reader", "reader-pw", guesser);
        Assert.Null(throttledAddress.User);
        Assert.Equal(LoginThrottleScope.Address, throttledAddress.Throttled?.Scope);
        Assert.Equal(7, hashes);

        // The same user from another address still logs in (remembered, so without a hash).
        Assert.Equal("reader", (await Verify("reader", "reader-pw", AddressC)).User?.Name);
        Assert.Equal(7, hashes);
    }

    [Fact]
    public async Task AttemptsQueuedForAHashSlotAreThrottledOnceTheLimitIsReachedWhileTheyWait()
    {
        var options = Options(maxConcurrent: 1, failedLoginLimit: 2);
        using var throttle = new LoginThrottle(options, NullLogger<LoginThrottle>.Instance);
        var hashes = 0;
        var proceed = new SemaphoreSlim(0);
        var verifier = new CredentialVerifier(options, TimeProvider.System, throttle, async (password, hash) =>
        {
            Interlocked.Increment(ref hashes);
            await proceed.WaitAsync();
            return PasswordHash.Verify(password, hash);
        });

        // A burst: all five pass the first look (nothing has failed yet); one hashes, four wait for the slot.
        var checks = Enumerable.Range(0, 5).Select(i => verifier.VerifyAsync("gate", $"guess-{i}", AddressA, CancellationToken.None)).ToArray();
        Assert.Equal(1, Volatile.Read(ref hashes));
        proceed.Release(5);
        var results = await Task.WhenAll(checks);

        Assert.Equal(2, hashes);
        Assert.Equal(2, results.Count(result => result == CredentialCheck.Refused));
        Assert.Equal(3, results.Count(result => result.Throttled is not null));
    }

    [Fact]
    public void AddressesOfOneIpv6SubnetCountTogether()
    {
        Assert.Equal(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2::1")), LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2:ffff::9")));
        Assert.NotEqual(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2::1")), LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:3::1")));
        Assert.Equal(LoginThrottle.AddressKey(IPAddress.Parse("192.0.2.1")), LoginThrottle.AddressKey(IPAddress.Parse("::ffff:192.0.2.1")));
        Assert.Null(LoginThrottle.AddressKey(null));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
