using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Tests.Auth;

public sealed class PasswordHashTests
{
    [Fact]
    public void HashVerifiesItsPasswordOnly()
    {
        var hash = PasswordHash.Hash("correct horse", iterations: 1000);
        Assert.True(PasswordHash.Verify("correct horse", hash));
        Assert.False(PasswordHash.Verify("correct horse ", hash));
        Assert.False(PasswordHash.Verify("Correct horse", hash));
        Assert.False(PasswordHash.Verify("", hash));
    }

    [Fact]
    public void HashIsSelfDescribingSaltedAndHasNoShellSpecialCharacters()
    {
        var first = PasswordHash.Hash("same", iterations: 1234);
        var second = PasswordHash.Hash("same", iterations: 1234);
        Assert.NotEqual(first, second);
        var parts = first.Split(':');
        Assert.Equal(["pbkdf2-sha256", "1234"], parts[..2]);
        Assert.Equal(4, parts.Length);
        Assert.DoesNotContain('$', first);
        Assert.DoesNotContain('"', first);
        Assert.DoesNotContain("same", first);
        Assert.True(PasswordHash.IsWellFormed(first));
    }

    [Fact]
    public void DefaultHashUsesTheRecommendedIterationCount()
    {
        var hash = PasswordHash.Hash("pw");
        Assert.StartsWith($"pbkdf2-sha256:{PasswordHash.DefaultIterations}:", hash);
        Assert.True(PasswordHash.Verify("pw", hash));
    }

    [Theory]
    [InlineData("")]
    [InlineData("plain-password")]
    [InlineData("pbkdf2-sha256:1000:c2FsdHNhbHQ")]
    [InlineData("pbkdf2-sha1:1000:c2FsdHNhbHRzYWx0:aGFzaGhhc2hoYXNoaGFzaA")]
    [InlineData("pbkdf2-sha256:10:c2FsdHNhbHRzYWx0:aGFzaGhhc2hoYXNoaGFzaA")]
    [InlineData("pbkdf2-sha256:1000:!!!:aGFzaGhhc2hoYXNoaGFzaA")]
    [InlineData("$pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA")]
    public void MalformedHashesNeverVerify(string hash)
    {
        Assert.False(PasswordHash.IsWellFormed(hash));
        Assert.False(PasswordHash.Verify("anything", hash));
    }

    [Fact]
    public void HashPasswordCommandReadsTheFirstLineOfStdinAndPrintsAHash()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = HashPasswordCommand.Run(["--iterations", "1000"], new StringReader("s3cret pass\nignored\n"), output, error, interactive: false);
        Assert.Equal(0, code);
        var hash = output.ToString().Trim();
        Assert.StartsWith("pbkdf2-sha256:1000:", hash);
        Assert.True(PasswordHash.Verify("s3cret pass", hash));
        Assert.DoesNotContain("s3cret", output.ToString() + error);
    }

    [Fact]
    public void HashPasswordCommandRefusesEmptyInputAndBadArguments()
    {
        Assert.Equal(1, HashPasswordCommand.Run([], new StringReader(""), new StringWriter(), new StringWriter(), interactive: false));
        Assert.Equal(2, HashPasswordCommand.Run(["--iterations", "5"], new StringReader("pw\n"), new StringWriter(), new StringWriter(), interactive: false));
        Assert.Equal(2, HashPasswordCommand.Run(["--bogus"], new StringReader("pw\n"), new StringWriter(), new StringWriter(), interactive: false));
    }

    [Fact]
    public async Task CredentialVerifierAcceptsTheRightPasswordAndSharesConcurrentChecks()
    {
        // No remembered successes: they would answer the later logins themselves and hide whether concurrent ones shared.
        var options = Options.Create(new AuthOptions
        {
            Users = [new AuthUser { Name = "gate", PasswordHash = PasswordHash.Hash("pw"), Role = "write" }],
            CredentialCacheLifetime = TimeSpan.Zero,
        });
        using var throttle = new LoginThrottle(options, NullLogger<LoginThrottle>.Instance);
        var hashes = 0;
        var proceed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var verifier = new CredentialVerifier(options, TimeProvider.System, throttle, async (password, hash) =>
        {
            Interlocked.Increment(ref hashes);
            // Held until every login has arrived, so whether they share does not depend on how fast the hash is.
            await proceed.Task;
            return PasswordHash.Verify(password, hash);
        });
        async Task<string?> Verify(string name, string password) => (await verifier.VerifyAsync(name, password, IPAddress.Loopback, CancellationToken.None)).User?.Name;

        // 50 simultaneous logins with a full-strength hash: one computation, not fifty. VerifyAsync runs synchronously
        // up to the hash, so all fifty are waiting on it here.
        var logins = Enumerable.Range(0, 50).Select(_ => Verify("gate", "pw")).ToArray();
        Assert.Equal(1, Volatile.Read(ref hashes));
        proceed.SetResult();
        Assert.All(await Task.WhenAll(logins), name => Assert.Equal("gate", name));
        Assert.Equal(1, hashes);

        Assert.Null(await Verify("gate", "wrong"));
        Assert.Null(await Verify("Gate", "pw"));
        Assert.Null(await Verify("nobody", "pw"));
        Assert.Equal("gate", await Verify("gate", "pw"));
    }
}
