using System.Net;
using System.Text;
using System.Text.Json;
using ShadowRegistry.Auth;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>Authentication on, anonymous pull allowed: anyone reads, only writers write.</summary>
public sealed class AnonymousPullModeTests(AnonymousPullServerFixture fixture) : IClassFixture<AnonymousPullServerFixture>
{
    private readonly RegistryServer server = fixture.Server;
    private readonly HttpClient client = fixture.Client;

    private Task<(byte[] Manifest, string Digest)> PushAsWriterAsync(string repository, string tag, int seed) =>
        AuthTestSupport.PushAsWriterAsync(server, client, repository, tag, seed);

    [Fact]
    public async Task VersionCheckChallengesUnauthenticatedClientsAndAcceptsAnyValidToken()
    {
        using var probe = await client.GetAsync("v2/");
        await probe.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, scope: null);
        Assert.Equal("registry/2.0", probe.Headers.GetValues("Docker-Distribution-API-Version").Single());

        var anonymous = await TokenAsync(client, null);
        using var withAnonymous = await client.SendAsync(HttpMethod.Get, "v2/", anonymous);
        await withAnonymous.ExpectAsync(HttpStatusCode.OK);

        var reader = await TokenAsync(client, Reader);
        using var withReader = await client.SendAsync(HttpMethod.Get, "v2/", reader);
        await withReader.ExpectAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task AnonymousClientsReadWithoutAnyToken()
    {
        var (manifest, digest) = await PushAsWriterAsync("open/readable", "v1", seed: 1);

        using var get = await client.GetAsync("v2/open/readable/manifests/v1");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(manifest, await get.Content.ReadAsByteArrayAsync());
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/open/readable/manifests/{digest}"));
        await head.ExpectAsync(HttpStatusCode.OK);
        using var tags = await client.GetAsync("v2/open/readable/tags/list");
        await tags.ExpectAsync(HttpStatusCode.OK);
        using var catalog = await client.GetAsync("v2/_catalog");
        await catalog.ExpectAsync(HttpStatusCode.OK);

        // The anonymous token a client fetches after the /v2/ challenge reads too.
        var anonymous = await TokenAsync(client, null, "repository:open/readable:pull");
        using var withToken = await client.SendAsync(HttpMethod.Get, "v2/open/readable/manifests/v1", anonymous);
        await withToken.ExpectAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task AnonymousPushIsChallenged()
    {
        using var post = await client.PostAsync("v2/open/anon-push/blobs/uploads/", null);
        await post.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, "repository:open/anon-push:pull,push");

        using var put = await client.PutManifestAsync("open/anon-push", "v1", Encoding.UTF8.GetBytes("{}"), OciHttp.OciManifest);
        await put.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, "repository:open/anon-push:pull,push");

        // An anonymous token asking for push gets only pull, and still may not push.
        var anonymous = await TokenAsync(client, null, "repository:open/anon-push:pull,push");
        using var withToken = await client.SendAsync(HttpMethod.Post, "v2/open/anon-push/blobs/uploads/", anonymous);
        var challenge = await withToken.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, "repository:open/anon-push:pull,push");
        Assert.Equal("insufficient_scope", challenge["error"]);
    }

    [Fact]
    public async Task WriterPushesAndEveryonePulls()
    {
        var (manifest, _) = await PushAsWriterAsync("open/pushed", "v1", seed: 2);
        using var get = await client.GetAsync("v2/open/pushed/manifests/v1");
        Assert.Equal(manifest, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task ReaderCannotPush()
    {
        var token = await TokenAsync(client, Reader, "repository:open/reader-push:pull,push");
        using var post = await client.SendAsync(HttpMethod.Post, "v2/open/reader-push/blobs/uploads/", token);
        var challenge = await post.ExpectChallengeAsync(HttpStatusCode.Forbidden, "DENIED", server, "repository:open/reader-push:pull,push");
        Assert.Equal("insufficient_scope", challenge["error"]);

        var content = OciHttp.RandomBytes(100, 3);
        using var monolithic = await client.SendAsync(HttpMethod.Post, $"v2/open/reader-push/blobs/uploads/?digest={OciHttp.Sha256(content)}", token, new ByteArrayContent(content));
        await monolithic.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
        using var put = await client.SendAsync(HttpMethod.Put, "v2/open/reader-push/manifests/v1", token, new ByteArrayContent(Encoding.UTF8.GetBytes("{}")));
        await put.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
        using var catalog = await client.GetAsync("v2/_catalog");
        Assert.DoesNotContain("open/reader-push", await catalog.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task DeleteNeedsTheDeleteScope()
    {
        var (_, digest) = await PushAsWriterAsync("open/deletable", "v1", seed: 4);

        var pushToken = await TokenAsync(client, Writer, "repository:open/deletable:pull,push");
        using var withoutScope = await client.SendAsync(HttpMethod.Delete, $"v2/open/deletable/manifests/{digest}", pushToken);
        await withoutScope.ExpectChallengeAsync(HttpStatusCode.Forbidden, "DENIED", server, "repository:open/deletable:delete");

        var readerToken = await TokenAsync(client, Reader, "repository:open/deletable:delete");
        using var asReader = await client.SendAsync(HttpMethod.Delete, $"v2/open/deletable/manifests/{digest}", readerToken);
        await asReader.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");

        var deleteToken = await TokenAsync(client, Writer, "repository:open/deletable:delete");
        using var deleted = await client.SendAsync(HttpMethod.Delete, $"v2/open/deletable/manifests/{digest}", deleteToken);
        await deleted.ExpectAsync(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task WrongPasswordAndUnknownUserGetUnauthorizedWithAChallenge()
    {
        foreach (var (user, password) in new[] { (Writer.Name, "wrong"), ("nobody", Writer.Password), (Writer.Name, ""), (Writer.Name.ToUpperInvariant(), Writer.Password) })
        {
            using var response = await RequestTokenAsync(client, user, password, "repository:open/x:pull,push");
            await response.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
            var header = Assert.Single(response.Headers.WwwAuthenticate);
            Assert.Equal("Basic", header.Scheme);
            if (password.Length > 0) Assert.DoesNotContain(password, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var garbage = new HttpRequestMessage(HttpMethod.Get, "auth/token?scope=repository:open/x:pull");
        garbage.Headers.TryAddWithoutValidation("Authorization", "Basic !!!not-base64");
        using var garbled = await client.SendAsync(garbage);
        await garbled.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
    }

    [Fact]
    public async Task TamperedExpiredForeignAndWrongAudienceTokensAreRejectedWithAFreshChallenge()
    {
        var scope = "repository:open/tokens:pull,push";
        var valid = await TokenAsync(client, Writer, scope);
        var parts = valid.Split('.');
        var payload = Encoding.UTF8.GetString(Microsoft.IdentityModel.Tokens.Base64UrlEncoder.DecodeBytes(parts[1])).Replace("open/tokens", "open/elsewhere");
        var tampered = $"{parts[0]}.{Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(payload)}.{parts[2]}";
        var access = new[] { new AccessScope("repository", "open/tokens", ["pull", "push"]) };
        var expired = ForgeToken(Writer.Name, access, DateTimeOffset.UtcNow - TimeSpan.FromHours(1));
        var otherAudience = ForgeToken(Writer.Name, access, DateTimeOffset.UtcNow, service: "another-registry");
        var otherKey = ForgeToken(Writer.Name, access, DateTimeOffset.UtcNow, secret: "another-secret-another-secret-another-secret");

        foreach (var (token, reason) in new[] { (tampered, "signature"), (expired, "expired"), (otherAudience, "another service"), (otherKey, "signature"), ("garbage", "malformed") })
        {
            using var response = await client.SendAsync(HttpMethod.Post, "v2/open/tokens/blobs/uploads/", token);
            var challenge = await response.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, scope);
            Assert.Equal("invalid_token", challenge["error"]);
            Assert.Contains(reason, await response.Content.ReadAsStringAsync());

            // An invalid token is refused even where no token is needed.
            using var read = await client.SendAsync(HttpMethod.Get, "v2/open/tokens/tags/list", token);
            await read.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }

        using var accepted = await client.SendAsync(HttpMethod.Post, "v2/open/tokens/blobs/uploads/", valid);
        await accepted.ExpectAsync(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task TokenForAnotherRepositoryIsDenied()
    {
        var token = await TokenAsync(client, Writer, "repository:open/mine:pull,push");
        using var post = await client.SendAsync(HttpMethod.Post, "v2/open/theirs/blobs/uploads/", token);
        await post.ExpectChallengeAsync(HttpStatusCode.Forbidden, "DENIED", server, "repository:open/theirs:pull,push");
        using var prefix = await client.SendAsync(HttpMethod.Post, "v2/open/mine/sub/blobs/uploads/", token);
        await prefix.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
    }

    [Fact]
    public async Task OAuth2PasswordGrantIssuesTokens()
    {
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password",
            ["username"] = Writer.Name,
            ["password"] = Writer.Password,
            ["service"] = Service,
            ["scope"] = "repository:open/oauth:pull,push repository:open/oauth-other:pull",
            ["client_id"] = "containerd",
        });
        using var response = await client.PostAsync("auth/token", form);
        await response.ExpectAsync(HttpStatusCode.OK);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var token = body.RootElement.GetProperty("access_token").GetString();
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());

        using var post = await client.SendAsync(HttpMethod.Post, "v2/open/oauth/blobs/uploads/", token);
        await post.ExpectAsync(HttpStatusCode.Accepted);

        using var wrong = await client.PostAsync("auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = Writer.Name, ["password"] = "nope", ["service"] = Service,
        }));
        await wrong.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");

        // Refresh tokens are not issued: clients fall back to the password grant or GET on a 400.
        using var refresh = await client.PostAsync("auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = "x", ["service"] = Service,
        }));
        await refresh.ExpectErrorAsync(HttpStatusCode.BadRequest, "UNSUPPORTED");
    }

    [Fact]
    public async Task TokenForAnotherServiceIsNotIssued()
    {
        using var response = await client.GetAsync("auth/token?service=another-registry&scope=repository:open/x:pull");
        await response.ExpectErrorAsync(HttpStatusCode.BadRequest, "UNSUPPORTED");
    }

    [Fact]
    public async Task MountFromAReadableRepositoryHappens()
    {
        var blob = OciHttp.RandomBytes(2048, 5);
        var sourceToken = await TokenAsync(client, Writer, "repository:open/mount-source:pull,push");
        using (var writer = WithToken(server, sourceToken)) await writer.PushBlobAsync("open/mount-source", blob);

        // Team may push only to team-a/**, but reads are public here, so the mount goes ahead.
        var token = await TokenAsync(client, Team, "repository:team-a/mounted:pull,push", "repository:open/mount-source:pull");
        using var mount = await client.SendAsync(HttpMethod.Post, $"v2/team-a/mounted/blobs/uploads/?mount={OciHttp.Sha256(blob)}&from=open/mount-source", token);
        await mount.ExpectAsync(HttpStatusCode.Created);
    }
}
