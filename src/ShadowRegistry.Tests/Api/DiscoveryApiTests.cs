using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>Tag lists, the catalog and referrers; this class's server holds only what its tests push.</summary>
public abstract class DiscoveryApiTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    private async Task<JsonDocument> GetJsonAsync(string path, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await client.GetAsync(path);
        await response.ExpectAsync(expected);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    private static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    [Fact]
    public async Task TagListIsSortedAndPaginated()
    {
        var (manifest, _) = await client.PushImageAsync("discovery/tags", "v1", seed: 1);
        foreach (var tag in new[] { "v3", "latest", "v2", "A", "v10" })
            using (var put = await client.PutManifestAsync("discovery/tags", tag, manifest, OciHttp.OciManifest)) await put.ExpectAsync(HttpStatusCode.Created);

        using (var all = await GetJsonAsync("v2/discovery/tags/tags/list"))
        {
            Assert.Equal("discovery/tags", all.RootElement.GetProperty("name").GetString());
            Assert.Equal(["A", "latest", "v1", "v10", "v2", "v3"], Strings(all.RootElement.GetProperty("tags")));
        }

        using var first = await client.GetAsync("v2/discovery/tags/tags/list?n=2");
        Assert.Equal(["A", "latest"], Strings(JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("tags")));
        var link = first.Headers.GetValues("Link").Single();
        Assert.Equal("</v2/discovery/tags/tags/list?n=2&last=latest>; rel=\"next\"", link);

        using (var second = await GetJsonAsync("v2/discovery/tags/tags/list?n=3&last=latest"))
            Assert.Equal(["v1", "v10", "v2"], Strings(second.RootElement.GetProperty("tags")));

        using var tail = await client.GetAsync("v2/discovery/tags/tags/list?n=5&last=v10");
        Assert.Equal(["v2", "v3"], Strings(JsonDocument.Parse(await tail.Content.ReadAsStringAsync()).RootElement.GetProperty("tags")));
        Assert.False(tail.Headers.Contains("Link"));

        using (var none = await GetJsonAsync("v2/discovery/tags/tags/list?n=0"))
            Assert.Empty(Strings(none.RootElement.GetProperty("tags")));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("abc")]
    public async Task InvalidPageSizeIsRejected(string n)
    {
        await client.PushImageAsync("discovery/badn", "v1", seed: 2);
        using var response = await client.GetAsync($"v2/discovery/badn/tags/list?n={n}");
        await response.ExpectErrorAsync(HttpStatusCode.BadRequest, "PAGINATION_NUMBER_INVALID");
    }

    [Fact]
    public async Task UnknownRepositoryTagListIsNameUnknown()
    {
        using var response = await client.GetAsync("v2/discovery/never/pushed/tags/list");
        await response.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
    }

    [Fact]
    public async Task RepositoryWithOnlyBlobsHasEmptyTagList()
    {
        await client.PushBlobAsync("discovery/blobsonly", [1, 2, 3]);
        using var response = await GetJsonAsync("v2/discovery/blobsonly/tags/list");
        Assert.Empty(Strings(response.RootElement.GetProperty("tags")));
    }

    [Fact]
    public async Task CatalogListsRepositoriesWithPagination()
    {
        var seed = 20;
        foreach (var name in new[] { "catalog/b", "catalog/a", "catalog/a/nested", "catalog/c" })
            await client.PushImageAsync(name, "v1", seed++);
        await client.PushBlobAsync("catalog/blobsonly", Encoding.UTF8.GetBytes("layers without a manifest are no catalog entry"));

        using var all = await GetJsonAsync("v2/_catalog");
        var repositories = Strings(all.RootElement.GetProperty("repositories")).Where(r => r.StartsWith("catalog/")).ToArray();
        Assert.Equal(["catalog/a", "catalog/a/nested", "catalog/b", "catalog/c"], repositories);

        using var page = await client.GetAsync("v2/_catalog?n=1&last=catalog/a");
        Assert.Equal(["catalog/a/nested"], Strings(JsonDocument.Parse(await page.Content.ReadAsStringAsync()).RootElement.GetProperty("repositories")));
        Assert.StartsWith("</v2/_catalog?n=1&last=catalog%2Fa%2Fnested>", page.Headers.GetValues("Link").Single());
    }

    [Fact]
    public async Task ReferrersListArtifactsBySubjectWithArtifactTypeFilter()
    {
        var (subject, subjectDigest) = await client.PushImageAsync("discovery/referrers", "v1", seed: 3);
        var empty = await client.PushBlobAsync("discovery/referrers", "{}"u8.ToArray());

        async Task<string> PushArtifactAsync(string artifactType, int seed)
        {
            var payload = OciHttp.RandomBytes(100, seed);
            var layer = await client.PushBlobAsync("discovery/referrers", payload);
            var manifest = Encoding.UTF8.GetBytes(new JsonObject
            {
                ["schemaVersion"] = 2,
                ["mediaType"] = OciHttp.OciManifest,
                ["artifactType"] = artifactType,
                ["config"] = OciHttp.Descriptor("application/vnd.oci.empty.v1+json", empty, 2),
                ["layers"] = new JsonArray(OciHttp.Descriptor("application/octet-stream", layer, payload.Length)),
                ["subject"] = OciHttp.Descriptor(OciHttp.OciManifest, subjectDigest, subject.Length),
                ["annotations"] = new JsonObject { ["org.example.seed"] = seed.ToString() },
            }.ToJsonString());
            var digest = OciHttp.Sha256(manifest);
            using var put = await client.PutManifestAsync("discovery/referrers", digest, manifest, OciHttp.OciManifest);
            await put.ExpectAsync(HttpStatusCode.Created);
            Assert.Equal(subjectDigest, put.Headers.GetValues("OCI-Subject").Single());
            return digest;
        }

        var signature = await PushArtifactAsync("application/vnd.example.signature", 4);
        var sbom = await PushArtifactAsync("application/vnd.example.sbom", 5);

        using var response = await client.GetAsync($"v2/discovery/referrers/referrers/{subjectDigest}");
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(OciHttp.OciIndex, response.Content.Headers.ContentType!.MediaType);
        using (var index = JsonDocument.Parse(await response.Content.ReadAsStringAsync()))
        {
            var manifests = index.RootElement.GetProperty("manifests").EnumerateArray().ToList();
            Assert.Equal(new[] { signature, sbom }.Order(StringComparer.Ordinal), manifests.Select(m => m.GetProperty("digest").GetString()!));
            var sig = manifests.Single(m => m.GetProperty("digest").GetString() == signature);
            Assert.Equal("application/vnd.example.signature", sig.GetProperty("artifactType").GetString());
            Assert.Equal("4", sig.GetProperty("annotations").GetProperty("org.example.seed").GetString());
        }

        using var filtered = await client.GetAsync($"v2/discovery/referrers/referrers/{subjectDigest}?artifactType=application/vnd.example.sbom");
        Assert.Equal("artifactType", filtered.Headers.GetValues("OCI-Filters-Applied").Single());
        using (var index = JsonDocument.Parse(await filtered.Content.ReadAsStringAsync()))
            Assert.Equal([sbom], index.RootElement.GetProperty("manifests").EnumerateArray().Select(m => m.GetProperty("digest").GetString()!));

        // Deleting a referrer removes it from the list.
        using (var delete = await client.DeleteAsync($"v2/discovery/referrers/manifests/{sbom}")) await delete.ExpectAsync(HttpStatusCode.Accepted);
        using var afterDelete = await GetJsonAsync($"v2/discovery/referrers/referrers/{subjectDigest}");
        Assert.Equal([signature], afterDelete.RootElement.GetProperty("manifests").EnumerateArray().Select(m => m.GetProperty("digest").GetString()!));
    }

    [Fact]
    public async Task ReferrersOfUnknownSubjectIsEmptyIndex()
    {
        var digest = OciHttp.Sha256(Encoding.UTF8.GetBytes("nothing refers to this"));
        using var index = await GetJsonAsync($"v2/discovery/noreferrers/referrers/{digest}");
        Assert.Equal(2, index.RootElement.GetProperty("schemaVersion").GetInt32());
        Assert.Empty(index.RootElement.GetProperty("manifests").EnumerateArray());
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class DiscoveryApiTestsOnFilesystem(RegistryServerFixture fixture) : DiscoveryApiTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class DiscoveryApiTestsInMemory(InMemoryRegistryServerFixture fixture) : DiscoveryApiTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
