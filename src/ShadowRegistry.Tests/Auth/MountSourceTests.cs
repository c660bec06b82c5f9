using System.Net;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>
/// A mount reads the source repository, so it may succeed only when that repository itself holds the blob. With a
/// Default upstream, a mount "from" an empty repository once fell through to the upstream fetcher, which answered
/// "present" for any blob in the shared store: a writer limited to team-a/** could then read team-b's layers.
/// </summary>
public sealed class MountSourceTests : IAsyncLifetime
{
    private FakeUpstream upstream = null!;
    private RegistryServer server = null!;
    private HttpClient client = null!;

    public async Task InitializeAsync()
    {
        upstream = FakeUpstream.Start();
        server = await RegistryServer.StartAsync(Args(anonymousPull: false, upstream.RegistryArgs()));
        client = server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await server.DisposeAsync();
        upstream.Dispose();
    }

    [Fact]
    public async Task MountFromARepositoryThatLacksTheBlobNeverExposesAnotherTeamsLayer()
    {
        var secret = OciHttp.RandomBytes(4096, 31);
        var digest = OciHttp.Sha256(secret);
        await PushBlobAsWriterAsync(server, client, "team-b/secret", secret);

        // Team may read team-a/empty, but team-a/empty holds nothing (locally or upstream).
        var token = await TokenAsync(client, Team, "repository:team-a/x:pull,push", "repository:team-a/empty:pull");
        using var mount = await client.SendAsync(HttpMethod.Post, $"v2/team-a/x/blobs/uploads/?mount={digest}&from=team-a/empty", token);
        await mount.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Contains("/blobs/uploads/", mount.Headers.Location!.ToString());

        using var get = await client.SendAsync(HttpMethod.Get, $"v2/team-a/x/blobs/{digest}", token);
        await get.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
        // The upstream was asked about team-a/empty and said no.
        Assert.Contains(upstream.Server.LogEntries, entry => entry.RequestMessage.Path == $"/v2/team-a/empty/blobs/{digest}");
    }

    [Fact]
    public async Task MountFromAnUpstreamRepositoryThatHasTheBlobSucceeds()
    {
        var layer = OciHttp.RandomBytes(4096, 32);
        var digest = OciHttp.Sha256(layer);
        upstream.ServeBlob("team-a/base", layer);
        // The same bytes are already held locally for another repository: they count once the upstream confirms.
        await PushBlobAsWriterAsync(server, client, "team-b/copy", layer);

        var token = await TokenAsync(client, Team, "repository:team-a/y:pull,push", "repository:team-a/base:pull");
        using var mount = await client.SendAsync(HttpMethod.Post, $"v2/team-a/y/blobs/uploads/?mount={digest}&from=team-a/base", token);
        await mount.ExpectAsync(HttpStatusCode.Created);
        using var get = await client.SendAsync(HttpMethod.Get, $"v2/team-a/y/blobs/{digest}", token);
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(layer, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task MountOfABlobTheUpstreamRepositoryHasWithOtherContentIsRefused()
    {
        // Held locally for team-b; the upstream's team-a/other has a blob under that digest with another size.
        var secret = OciHttp.RandomBytes(4096, 33);
        var digest = OciHttp.Sha256(secret);
        await PushBlobAsWriterAsync(server, client, "team-b/held", secret);
        upstream.Server
            .Given(WireMock.RequestBuilders.Request.Create().WithPath($"/v2/team-a/other/blobs/{digest}").UsingHead())
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(200).WithHeader("Content-Length", "10"));

        var token = await TokenAsync(client, Team, "repository:team-a/z:pull,push", "repository:team-a/other:pull");
        using var mount = await client.SendAsync(HttpMethod.Post, $"v2/team-a/z/blobs/uploads/?mount={digest}&from=team-a/other", token);
        await mount.ExpectAsync(HttpStatusCode.Accepted);
    }
}
