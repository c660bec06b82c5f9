using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Tests.Auth;

/// <summary>A clock the test moves by hand.</summary>
public sealed class ManualTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

public sealed class TokenServiceTests
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("0123456789abcdef0123456789abcdef-test-secret");
    private static readonly AccessScope PushApp = new("repository", "team/app", ["pull", "push"]);

    private readonly ManualTimeProvider clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    private TokenService Service(TokenSigningKey? key = null, string service = "shadow-registry", string issuer = "shadow-registry") =>
        new(Options.Create(new AuthOptions
        {
            Service = service,
            Issuer = issuer,
            TokenLifetime = TimeSpan.FromMinutes(5),
            ClockSkew = TimeSpan.FromSeconds(30),
        }), key ?? TokenSigningKey.FromSecret(Secret), clock);

    [Fact]
    public async Task IssuedTokenValidatesWithItsSubjectAndAccess()
    {
        var service = Service();
        var issued = service.Issue("gate", [PushApp, AccessScope.Catalog]);
        Assert.Equal(300, issued.ExpiresInSeconds);
        Assert.Equal(clock.Now, issued.IssuedAt);

        var (token, rejection) = await service.ValidateAsync(issued.Token);
        Assert.Null(rejection);
        Assert.Equal("gate", token!.Subject);
        Assert.True(token.Allows("repository", "team/app", "pull"));
        Assert.True(token.Allows("repository", "team/app", "push"));
        Assert.False(token.Allows("repository", "team/app", "delete"));
        Assert.False(token.Allows("repository", "team/other", "pull"));
        Assert.False(token.Allows("repository", "team/app/sub", "pull"));
        Assert.True(token.Allows("registry", "catalog", "*"));
    }

    [Fact]
    public async Task TokenHasTheDockerTokenShape()
    {
        var issued = Service().Issue(null, [PushApp]);
        var parts = issued.Token.Split('.');
        Assert.Equal(3, parts.Length);
        var header = JsonNode.Parse(Base64UrlEncoder.Decode(parts[0]))!;
        var payload = JsonNode.Parse(Base64UrlEncoder.Decode(parts[1]))!;
        Assert.Equal("HS256", (string?)header["alg"]);
        Assert.Equal("shadow-registry", (string?)payload["iss"]);
        Assert.Equal("shadow-registry", (string?)payload["aud"]);
        Assert.Equal("", (string?)payload["sub"]);
        Assert.Equal(clock.Now.ToUnixTimeSeconds() + 300, (long)payload["exp"]!);
        Assert.False(string.IsNullOrEmpty((string?)payload["jti"]));
        var access = payload["access"]!.AsArray().Single()!;
        Assert.Equal("repository", (string?)access["type"]);
        Assert.Equal("team/app", (string?)access["name"]);
        Assert.Equal(["pull", "push"], access["actions"]!.AsArray().Select(a => (string?)a));

        var (anonymous, _) = await Service().ValidateAsync(issued.Token);
        Assert.Null(anonymous!.Subject);
    }

    [Fact]
    public async Task TamperedPayloadIsRejected()
    {
        var service = Service();
        var parts = service.Issue("reader", [new AccessScope("repository", "team/app", ["pull"])]).Token.Split('.');
        var payload = JsonNode.Parse(Base64UrlEncoder.Decode(parts[1]))!;
        payload["access"]![0]!["actions"] = new JsonArray("pull", "push");
        var forged = $"{parts[0]}.{Base64UrlEncoder.Encode(payload.ToJsonString())}.{parts[2]}";

        var (token, rejection) = await service.ValidateAsync(forged);
        Assert.Null(token);
        Assert.Equal("token signature does not match", rejection!.Reason);
    }

    [Fact]
    public async Task TamperedSignatureIsRejected()
    {
        var service = Service();
        var issued = service.Issue("gate", [PushApp]).Token;
        var signature = issued[(issued.LastIndexOf('.') + 1)..];
        var flipped = (signature[0] == 'A' ? 'B' : 'A') + signature[1..];
        var (token, rejection) = await service.ValidateAsync(issued[..(issued.LastIndexOf('.') + 1)] + flipped);
        Assert.Null(token);
        Assert.NotNull(rejection);
    }

    [Fact]
    public async Task UnsignedAndOtherKeyTokensAreRejected()
    {
        var service = Service();
        var parts = service.Issue("gate", [PushApp]).Token.Split('.');
        var none = Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""");
        Assert.NotNull((await service.ValidateAsync($"{none}.{parts[1]}.")).Rejection);
        Assert.NotNull((await service.ValidateAsync($"{none}.{parts[1]}")).Rejection);

        var otherKey = Service(TokenSigningKey.FromSecret(RandomNumberGenerator.GetBytes(32)));
        var (token, rejection) = await service.ValidateAsync(otherKey.Issue("gate", [PushApp]).Token);
        Assert.Null(token);
        Assert.Equal("token signature does not match", rejection!.Reason);
    }

    [Fact]
    public async Task ExpiredTokensAreRejectedAfterTheClockSkew()
    {
        var service = Service();
        var issued = service.Issue("gate", [PushApp]);

        clock.Now = issued.ExpiresAt + TimeSpan.FromSeconds(20);
        Assert.Null((await service.ValidateAsync(issued.Token)).Rejection);

        clock.Now = issued.ExpiresAt + TimeSpan.FromSeconds(31);
        var (token, rejection) = await service.ValidateAsync(issued.Token);
        Assert.Null(token);
        Assert.Equal("token expired", rejection!.Reason);
    }

    [Fact]
    public async Task TokensFromTheFutureAreRejected()
    {
        var service = Service();
        var issued = service.Issue("gate", [PushApp]);
        clock.Now -= TimeSpan.FromMinutes(2);
        Assert.Equal("token not yet valid", (await service.ValidateAsync(issued.Token)).Rejection!.Reason);
    }

    [Fact]
    public async Task WrongAudienceOrIssuerIsRejected()
    {
        var token = Service(service: "other-registry").Issue("gate", [PushApp]).Token;
        Assert.Equal("token was issued for another service", (await Service().ValidateAsync(token)).Rejection!.Reason);

        token = Service(issuer: "someone-else").Issue("gate", [PushApp]).Token;
        Assert.Equal("token was issued by another issuer", (await Service().ValidateAsync(token)).Rejection!.Reason);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not-a-jwt")]
    [InlineData("a.b.c")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln")]
    public async Task GarbageIsRejectedWithoutThrowing(string garbage)
    {
        var (token, rejection) = await Service().ValidateAsync(garbage);
        Assert.Null(token);
        Assert.NotNull(rejection);
    }

    [Fact]
    public async Task RsaAndEcKeysFromPemSignAndValidate()
    {
        using var rsa = RSA.Create(2048);
        var rsaKey = TokenSigningKey.FromPem(rsa.ExportPkcs8PrivateKeyPem());
        Assert.Equal("RS256", rsaKey.Algorithm);
        var rsaService = Service(rsaKey);
        Assert.Null((await rsaService.ValidateAsync(rsaService.Issue("gate", [PushApp]).Token)).Rejection);

        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var ecKey = TokenSigningKey.FromPem(ec.ExportECPrivateKeyPem());
        Assert.Equal("ES256", ecKey.Algorithm);
        var ecService = Service(ecKey);
        Assert.Null((await ecService.ValidateAsync(ecService.Issue("gate", [PushApp]).Token)).Rejection);

        // A token signed with one kind of key does not pass with the other, nor with an HMAC key.
        Assert.NotNull((await ecService.ValidateAsync(rsaService.Issue("gate", [PushApp]).Token)).Rejection);
        Assert.NotNull((await Service().ValidateAsync(ecService.Issue("gate", [PushApp]).Token)).Rejection);
    }

    [Fact]
    public void KeyConfigurationMistakesAreExplained()
    {
        Assert.Contains("at least 32 bytes", Assert.Throws<InvalidOperationException>(() => TokenSigningKey.Load(new SigningKeyOptions { Secret = "short" })).Message);
        Assert.Contains("not both", Assert.Throws<InvalidOperationException>(() => TokenSigningKey.Load(new SigningKeyOptions { Secret = new string('x', 40), KeyPath = "/x" })).Message);
        Assert.Contains("cannot be read", Assert.Throws<InvalidOperationException>(() => TokenSigningKey.Load(new SigningKeyOptions { KeyPath = "/nonexistent/key.pem" })).Message);
        using var rsa = RSA.Create(2048);
        Assert.Contains("no RSA or EC private key", Assert.Throws<InvalidOperationException>(() => TokenSigningKey.FromPem(rsa.ExportSubjectPublicKeyInfoPem())).Message);
        Assert.True(TokenSigningKey.Load(new SigningKeyOptions()).IsEphemeral);
    }
}
