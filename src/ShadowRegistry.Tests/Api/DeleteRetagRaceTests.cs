using System.Net;
using System.Text.Json;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// DELETE of a manifest by digest removes the tags pointing at it. It once listed those tags and deleted them
/// later, so a PUT of the same tag to another manifest that landed in between was acknowledged and then lost
/// (244 of 1000 in a test). A tag may only be removed while it still points at the deleted manifest.
/// </summary>
public abstract class DeleteRetagRaceTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    // 20 rounds of 40 tags re-pointed while the old manifest is deleted: 800 acknowledged updates. The old
    // list-then-delete lost some in every run tried (typically dozens).
    private const int Rounds = 20;
    private const int Tags = 40;

    [Fact]
    public async Task AcknowledgedRetagIsNeverLostToAConcurrentDeleteOfTheOldManifest()
    {
        const string repository = "race/delete-retag";
        var (manifestA, digestA) = await client.PushImageAsync(repository, "setup-a", seed: 41);
        var (manifestB, digestB) = await client.PushImageAsync(repository, "setup-b", seed: 42);
        var tags = Enumerable.Range(0, Tags).Select(i => $"t{i}").ToArray();
        var lost = new List<string>();
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var tag in tags)
            {
                using var pointAtA = await client.PutManifestAsync(repository, tag, manifestA, OciHttp.OciManifest);
                await pointAtA.ExpectAsync(HttpStatusCode.Created);
            }

            // The delete walks the tags pointing at A while every one of them is re-pointed at B.
            var delete = client.DeleteAsync($"v2/{repository}/manifests/{digestA}");
            var retags = tags.Select(tag => client.PutManifestAsync(repository, tag, manifestB, OciHttp.OciManifest)).ToArray();
            using (var deleted = await delete) await deleted.ExpectAsync(HttpStatusCode.Accepted);
            foreach (var retag in retags)
            {
                using var retagged = await retag;
                await retagged.ExpectAsync(HttpStatusCode.Created);
            }

            // Every PUT of B was acknowledged and B was never deleted: every tag must name B.
            foreach (var tag in tags)
            {
                using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/manifests/{tag}"));
                if (head.StatusCode != HttpStatusCode.OK || head.Headers.GetValues("Docker-Content-Digest").Single() != digestB) lost.Add($"{round}/{tag}");
            }
        }
        Assert.True(lost.Count == 0, $"{lost.Count} of {Rounds * Tags} acknowledged tag updates were lost ({string.Join(", ", lost.Take(20))})");

        // A is gone with the setup tag that pointed at it; B's tags all survived.
        using var list = await client.GetAsync($"v2/{repository}/tags/list");
        using var body = JsonDocument.Parse(await list.Content.ReadAsStringAsync());
        Assert.Equal(tags.Append("setup-b").Order(StringComparer.Ordinal), body.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public async Task ConcurrentPushAndDeleteOfTheSameManifestNeverLeaveATagPointingAtNothing()
    {
        const string repository = "race/dangling";
        var (manifest, digest) = await client.PushImageAsync(repository, "setup", seed: 43);
        for (var round = 0; round < 300; round++)
        {
            var delete = client.DeleteAsync($"v2/{repository}/manifests/{digest}");
            var push = client.PutManifestAsync(repository, "again", manifest, OciHttp.OciManifest);
            using (var deleted = await delete) Assert.True(deleted.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.NotFound, $"{(int)deleted.StatusCode}");
            using (var pushed = await push) await pushed.ExpectAsync(HttpStatusCode.Created);

            // Either order is fine, but a tag that exists must resolve to a manifest that exists.
            using var list = await client.GetAsync($"v2/{repository}/tags/list");
            using var body = JsonDocument.Parse(await list.Content.ReadAsStringAsync());
            foreach (var tag in body.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()))
            {
                using var get = await client.GetAsync($"v2/{repository}/manifests/{tag}");
                await get.ExpectAsync(HttpStatusCode.OK);
            }
        }
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class DeleteRetagRaceTestsOnFilesystem(RegistryServerFixture fixture) : DeleteRetagRaceTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class DeleteRetagRaceTestsInMemory(InMemoryRegistryServerFixture fixture) : DeleteRetagRaceTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
