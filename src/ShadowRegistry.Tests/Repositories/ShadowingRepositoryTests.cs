using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Domain;
using ShadowRegistry.Hosting;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;
using ShadowRegistry.Tests.Infrastructure;
using ShadowRegistry.Upstream;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Repositories;

/// <summary>
/// The fall-through policy of <see cref="ShadowingRepository"/>, called directly (no HTTP in front of it) over the
/// in-memory storage driver and a WireMock upstream. Each test pins one rule: breaking the rule fails the test.
/// </summary>
public sealed class ShadowingRepositoryTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly FakeUpstream upstream = FakeUpstream.Start();
    private readonly string root = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));
    private WebApplication app = null!;

    public Task InitializeAsync()
    {
        // The registry's own wiring, never started: only its services are used.
        app = RegistryApp.Build(upstream.RegistryArgs("--Registry:Storage:Driver", "inmemory", "--data", root));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await app.DisposeAsync();
        upstream.Dispose();
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    private T Service<T>() where T : notnull => app.Services.GetRequiredService<T>();

    /// <summary>The repository a request for this name gets (shadowing the default upstream "up.test").</summary>
    private IRepository Repository(string name) => Service<RepositoryFactory>().For(Service<RepositoryResolver>().Resolve(Name(name), null));

    private static RepositoryName Name(string value) => RepositoryName.TryParse(value, out var name) ? name : throw new ArgumentException(value);

    private static HttpRequest AnyRequest() => new DefaultHttpContext().Request;

    /// <summary>Stores the bytes in the shared blob store without linking them to any repository.</summary>
    private async Task<Digest> StoreAsync(byte[] content)
    {
        var digest = Digest.Parse(OciHttp.Sha256(content));
        await Service<BlobStore>().PutAsync(content, digest, None);
        return digest;
    }

    /// <summary>Pushes an image into the repository's local content, as a client push would.</summary>
    private async Task<string> PushLocalAsync(IRepository repository, string tag, int seed)
    {
        var image = FakeUpstream.Image(seed);
        foreach (var blob in new[] { image.Config, image.Layer })
            await Service<BlobLinks>().LinkAsync(repository.Target.Local, await StoreAsync(blob), None);
        var pushed = await repository.PutManifestAsync(tag, image.Manifest, OciHttp.OciManifest, None);
        return pushed.Digest.ToString();
    }

    private int UpstreamRequests(string pathPart) => upstream.CountRequests(r => r.Path.Contains(pathPart, StringComparison.Ordinal));

    [Fact]
    public async Task LocalContentWinsWithoutAskingTheUpstream()
    {
        var remote = FakeUpstream.Image(1);
        upstream.ServeManifest("team/app", "v1", remote.Manifest);
        upstream.ServeBlob("team/app", remote.Layer);
        var repository = Repository("team/app");
        Assert.IsType<ShadowingRepository>(repository);
        var localDigest = await PushLocalAsync(repository, "v1", seed: 2);

        var manifest = await repository.GetManifestAsync("v1", headOnly: false, AnyRequest(), None);
        Assert.NotNull(manifest);
        Assert.Equal(localDigest, manifest.Digest.ToString());
        Assert.Equal("local", manifest.Source);

        var layer = Digest.Parse(OciHttp.Sha256(FakeUpstream.Image(2).Layer));
        var blob = Assert.IsType<LocalBlob>(await repository.GetBlobAsync(layer, None));
        Assert.Equal("local", blob.Source);

        Assert.Equal(0, UpstreamRequests("/manifests/"));
        Assert.Equal(0, UpstreamRequests("/blobs/"));
    }

    [Fact]
    public async Task ALocalMissFallsThroughToTheUpstream()
    {
        var remote = FakeUpstream.Image(3);
        upstream.ServeManifest("team/app", "v2", remote.Manifest);
        upstream.ServeBlob("team/app", remote.Layer);
        var repository = Repository("team/app");

        var manifest = await repository.GetManifestAsync("v2", headOnly: false, AnyRequest(), None);
        Assert.NotNull(manifest);
        Assert.Equal(remote.Digest, manifest.Digest.ToString());
        Assert.Equal(remote.Manifest, manifest.Content);
        Assert.Equal("upstream", manifest.Source);

        // A blob only the upstream has is served from there; one it lacks too is nowhere.
        var layer = Digest.Parse(OciHttp.Sha256(remote.Layer));
        Assert.IsType<UpstreamBlob>(await repository.GetBlobAsync(layer, None));
        Assert.Null(await repository.GetManifestAsync("missing", headOnly: false, AnyRequest(), None));

        // The same name without an upstream is purely local: no fall-through.
        var localOnly = Service<RepositoryFactory>().For(new RepositoryTarget(Name("team/app"), null, Name("team/app"), null));
        Assert.IsType<LocalRepository>(localOnly);
        Assert.Null(await localOnly.GetManifestAsync("v2", headOnly: false, AnyRequest(), None));
    }

    [Fact]
    public async Task AnUnavailableUpstreamKeepsTheLocalTags()
    {
        upstream.ServeTags("team/app", "up1", "shared");
        var repository = Repository("team/app");
        await PushLocalAsync(repository, "shared", seed: 4);
        await PushLocalAsync(repository, "mine", seed: 5);

        var merged = await repository.ListTagsAsync(None);
        Assert.NotNull(merged);
        Assert.Equal(new[] { "mine", "shared", "up1" }, merged.Tags);
        Assert.Equal("local+upstream", merged.Source);

        upstream.Server.Reset();
        foreach (var name in new[] { "team/app", "team/nothing-here" })
            upstream.Server.Given(Request.Create().WithPath($"/v2/{name}/tags/list").UsingGet()).RespondWith(Response.Create().WithStatusCode(503));
        var kept = await repository.ListTagsAsync(None);
        Assert.NotNull(kept);
        Assert.Equal(new[] { "mine", "shared" }, kept.Tags);
        Assert.Equal("local", kept.Source);

        // With nothing local there is nothing to keep: the upstream's failure is the answer.
        await Assert.ThrowsAsync<UpstreamUnavailableException>(() => Repository("team/nothing-here").ListTagsAsync(None));
    }

    [Fact]
    public async Task AMountCountsOnlyTheSourcesOwnContent()
    {
        var content = OciHttp.RandomBytes(2000, 6);
        var digest = await StoreAsync(content);
        // The bytes are in the shared store, linked to some other repository only.
        await Service<BlobLinks>().LinkAsync(Repository("team/other").Target.Local, digest, None);
        var target = Repository("team/target");

        Assert.False(await target.MountAsync(digest, Repository("team/source"), None));
        Assert.Null(await Service<BlobLinks>().GetSizeAsync(target.Target.Local, digest, None));

        // The source's upstream confirming the blob makes it the source's own content.
        upstream.ServeBlob("team/confirmed", content);
        Assert.True(await target.MountAsync(digest, Repository("team/confirmed"), None));
        Assert.Equal(content.Length, await Service<BlobLinks>().GetSizeAsync(target.Target.Local, digest, None));

        // And so does the source holding it locally.
        var second = Repository("team/second");
        Assert.True(await second.MountAsync(digest, Repository("team/other"), None));
    }
}
