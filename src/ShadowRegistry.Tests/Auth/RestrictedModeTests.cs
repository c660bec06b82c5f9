using System.Net;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>Restricted mode: reads need authentication too; repository patterns limit what a user reaches.</summary>
public sealed class RestrictedModeTests(RestrictedServerFixture fixture) : IClassFixture<RestrictedServerFixture>
{
    private readonly RegistryServer server = fixture.Server;
    private readonly HttpClient client = fixture.Client;

    private Task<(byte[] Manifest, string Digest)> PushAsWriterAsync(string repository, string tag, int seed) =>
        AuthTestSupport.PushAsWriterAsync(server, client, repository, tag, seed);

    [Fact]
    public async Task AnonymousClientsAreChallengedEverywhere()
    {
        await PushAsWriterAsync("private/app", "v1", seed: 10);

        using var probe = await client.GetAsync("v2/");
        await probe.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, scope: null);
        using var manifest = await client.GetAsync("v2/private/app/manifests/v1");
        await manifest.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, "repository:private/app:pull");
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "v2/private/app/manifests/v1"));
        Assert.Equal(HttpStatusCode.Unauthorized, head.StatusCode);
        Assert.Single(head.Headers.WwwAuthenticate);
        using var tags = await client.GetAsync("v2/private/app/tags/list");
        await tags.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, "repository:private/app:pull");
        using var catalog = await client.GetAsync("v2/_catalog");
        await catalog.ExpectChallengeAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED", server, "registry:catalog:*");

        // And no anonymous token is handed out.
        using var token = await RequestTokenAsync(client, null, null, "repository:private/app:pull");
        await token.ExpectErrorAsync(HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        Assert.Equal("Basic", Assert.Single(token.Headers.WwwAuthenticate).Scheme);
    }

    [Fact]
    public async Task ReaderReadsButCannotPush()
    {
        var (expected, digest) = await PushAsWriterAsync("private/readable", "v1", seed: 11);

        var token = await TokenAsync(client, Reader, "repository:private/readable:pull,push");
        using var probe = await client.SendAsync(HttpMethod.Get, "v2/", token);
        await probe.ExpectAsync(HttpStatusCode.OK);
        using var get = await client.SendAsync(HttpMethod.Get, "v2/private/readable/manifests/v1", token);
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(expected, await get.Content.ReadAsByteArrayAsync());
        using var byDigest = await client.SendAsync(HttpMethod.Get, $"v2/private/readable/manifests/{digest}", token);
        await byDigest.ExpectAsync(HttpStatusCode.OK);

        using var push = await client.SendAsync(HttpMethod.Post, "v2/private/readable/blobs/uploads/", token);
        await push.ExpectChallengeAsync(HttpStatusCode.Forbidden, "DENIED", server, "repository:private/readable:pull,push");

        // A reader without repository patterns may list the catalog.
        var catalogToken = await TokenAsync(client, Reader, "registry:catalog:*");
        using var catalog = await client.SendAsync(HttpMethod.Get, "v2/_catalog", catalogToken);
        await catalog.ExpectAsync(HttpStatusCode.OK);
        Assert.Contains("private/readable", await catalog.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RepositoryPatternsLimitAUser()
    {
        await PushAsWriterAsync("team-b/app", "v1", seed: 12);

        var token = await TokenAsync(client, Team, "repository:team-a/app:pull,push", "repository:team-b/app:pull,push", "registry:catalog:*");
        using (var team = WithToken(server, token))
        {
            await team.PushImageAsync("team-a/app", "v1", seed: 13);
        }

        using var read = await client.SendAsync(HttpMethod.Get, "v2/team-b/app/manifests/v1", token);
        await read.ExpectChallengeAsync(HttpStatusCode.Forbidden, "DENIED", server, "repository:team-b/app:pull");
        using var push = await client.SendAsync(HttpMethod.Post, "v2/team-b/app/blobs/uploads/", token);
        await push.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
        using var catalog = await client.SendAsync(HttpMethod.Get, "v2/_catalog", token);
        await catalog.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
    }

    [Fact]
    public async Task TheNamespaceParameterCannotLeadPastAUsersPatterns()
    {
        // /v2/team-a/secret?ns=internal is the local repository internal/team-a/secret, outside team-a/**.
        await PushAsWriterAsync("internal/team-a/secret", "v1", seed: 14);
        var token = await TokenAsync(client, Team, "repository:team-a/secret:pull,push");

        using var read = await client.SendAsync(HttpMethod.Get, "v2/team-a/secret/manifests/v1?ns=internal", token);
        var challenge = await read.ExpectChallengeAsync(HttpStatusCode.Forbidden, "DENIED", server,
            "repository:team-a/secret:pull repository:internal/team-a/secret:pull");
        using var push = await client.SendAsync(HttpMethod.Post, "v2/team-a/secret/blobs/uploads/?ns=internal", token);
        await push.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");

        // The writer, allowed both names, goes through.
        var writerToken = await TokenAsync(client, Writer, challenge["scope"].Split(' '));
        using var allowed = await client.SendAsync(HttpMethod.Get, "v2/team-a/secret/manifests/v1?ns=internal", writerToken);
        await allowed.ExpectAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task MountWithoutPullOnTheSourceBecomesAPlainUpload()
    {
        var blob = OciHttp.RandomBytes(4096, 15);
        var digest = OciHttp.Sha256(blob);
        await PushBlobAsWriterAsync(server, client, "private/mount-source", blob);

        // Team asks for the source too, but is not granted it: no mount, a fresh session to upload into instead.
        var token = await TokenAsync(client, Team, "repository:team-a/mount-target:pull,push", "repository:private/mount-source:pull");
        using var mount = await client.SendAsync(HttpMethod.Post, $"v2/team-a/mount-target/blobs/uploads/?mount={digest}&from=private/mount-source", token);
        await mount.ExpectAsync(HttpStatusCode.Accepted);
        using var notMounted = await client.SendAsync(HttpMethod.Head, $"v2/team-a/mount-target/blobs/{digest}", token);
        Assert.Equal(HttpStatusCode.NotFound, notMounted.StatusCode);

        // The session works: the client uploads the blob itself.
        using var finish = await client.SendAsync(HttpMethod.Put, OciHttp.WithQuery(mount.Headers.Location!, $"digest={digest}"), token, new ByteArrayContent(blob));
        await finish.ExpectAsync(HttpStatusCode.Created);

        // The writer may read the source, so its mount happens.
        var writerToken = await TokenAsync(client, Writer, "repository:private/mount-copy:pull,push", "repository:private/mount-source:pull");
        using var mounted = await client.SendAsync(HttpMethod.Post, $"v2/private/mount-copy/blobs/uploads/?mount={digest}&from=private/mount-source", writerToken);
        await mounted.ExpectAsync(HttpStatusCode.Created);
    }
}
