using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

public abstract class ManifestApiTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    private static byte[] Json(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString());

    [SkippableTheory]
    [InlineData(OciHttp.OciManifest)]
    [InlineData(OciHttp.DockerManifest)]
    public async Task PushedManifestIsReadableByTagAndDigest(string mediaType)
    {
        var repository = mediaType == OciHttp.OciManifest ? "manifests/oci" : "manifests/docker";
        var (manifest, digest) = await client.PushImageAsync(repository, "v1", seed: 1, mediaType);

        foreach (var reference in new[] { "v1", digest })
        {
            using var get = await client.GetAsync($"v2/{repository}/manifests/{reference}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(manifest, await get.Content.ReadAsByteArrayAsync());
            Assert.Equal(mediaType, get.Content.Headers.ContentType!.MediaType);
            Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());

            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/manifests/{reference}"));
            await head.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(manifest.Length, head.Content.Headers.ContentLength);
            Assert.Equal(digest, head.Headers.GetValues("Docker-Content-Digest").Single());
        }
    }

    [SkippableFact]
    public async Task PutReturnsLocationAndDigest()
    {
        var config = await client.PushBlobAsync("manifests/put", "{}"u8.ToArray());
        var manifest = Json(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", config, 2),
            ["layers"] = new JsonArray(),
        });
        using var put = await client.PutManifestAsync("manifests/put", "latest", manifest, OciHttp.OciManifest);
        await put.ExpectAsync(HttpStatusCode.Created);
        var digest = OciHttp.Sha256(manifest);
        Assert.Equal(digest, put.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal($"/v2/manifests/put/manifests/{digest}", put.Headers.Location!.ToString());
    }

    [SkippableFact]
    public async Task PushByDigestMustMatchContent()
    {
        var (manifest, _) = await client.PushImageAsync("manifests/bydigest", "base", seed: 2);
        var wrong = OciHttp.Sha256(Encoding.UTF8.GetBytes("something else"));
        using var mismatch = await client.PutManifestAsync("manifests/bydigest", wrong, manifest, OciHttp.OciManifest);
        await mismatch.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");

        using var match = await client.PutManifestAsync("manifests/bydigest", OciHttp.Sha256(manifest), manifest, OciHttp.OciManifest);
        await match.ExpectAsync(HttpStatusCode.Created);
    }

    [SkippableFact]
    public async Task ManifestReferencingUnknownBlobIsRejected()
    {
        var config = await client.PushBlobAsync("manifests/missing", "{}"u8.ToArray());
        var missing = OciHttp.Sha256(OciHttp.RandomBytes(64, 3));
        var manifest = Json(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", config, 2),
            ["layers"] = new JsonArray(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", missing, 64)),
        });
        using var put = await client.PutManifestAsync("manifests/missing", "v1", manifest, OciHttp.OciManifest);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_BLOB_UNKNOWN");
        using var get = await client.GetAsync("v2/manifests/missing/manifests/v1");
        await get.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
    }

    [SkippableFact]
    public async Task DescriptorSizeMustMatchBlob()
    {
        var config = await client.PushBlobAsync("manifests/size", "{}"u8.ToArray());
        var manifest = Json(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", config, 3),
            ["layers"] = new JsonArray(),
        });
        using var put = await client.PutManifestAsync("manifests/size", "v1", manifest, OciHttp.OciManifest);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_INVALID");
    }

    [SkippableTheory]
    [InlineData("{not json", OciHttp.OciManifest)]
    [InlineData("[]", OciHttp.OciManifest)]
    [InlineData("{\"schemaVersion\":1,\"name\":\"x\"}", OciHttp.OciManifest)]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"}", OciHttp.OciManifest)]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:12\",\"size\":1},\"layers\":[]}", OciHttp.OciManifest)]
    [InlineData("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:12\",\"size\":1},\"layers\":[]}", "application/vnd.example.unknown+json")]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}", OciHttp.OciManifest)]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":{}}", OciHttp.OciIndex)]
    public async Task MalformedManifestIsManifestInvalid(string body, string mediaType)
    {
        using var put = await client.PutManifestAsync("manifests/malformed", "v1", Encoding.UTF8.GetBytes(body), mediaType);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_INVALID");
    }

    [SkippableFact]
    public async Task OversizeManifestIsRejected()
    {
        var padding = new string(' ', 4 * 1024 * 1024);
        var body = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"layers\":[]" + padding + "}");
        using var put = await client.PutManifestAsync("manifests/oversize", "v1", body, OciHttp.OciManifest);
        await put.ExpectErrorAsync(HttpStatusCode.RequestEntityTooLarge, "MANIFEST_INVALID");
    }

    [SkippableTheory]
    [InlineData("-leadingdash")]
    [InlineData(".leadingdot")]
    [InlineData("has%20space")]
    [InlineData("waytoolong0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890")]
    public async Task InvalidTagIsTagInvalid(string tag)
    {
        var (manifest, _) = await client.PushImageAsync("manifests/tags", "ok", seed: 4);
        using var put = await client.PutManifestAsync("manifests/tags", tag, manifest, OciHttp.OciManifest);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "TAG_INVALID");
    }

    [SkippableFact]
    public async Task IndexRequiresItsManifests()
    {
        var (child, childDigest) = await client.PushImageAsync("manifests/index", "amd64", seed: 5);
        var missing = OciHttp.Sha256(Encoding.UTF8.GetBytes("absent manifest"));
        JsonObject Index(params JsonObject[] entries) => new()
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciIndex,
            ["manifests"] = new JsonArray(entries),
        };

        using var bad = await client.PutManifestAsync("manifests/index", "multi", Json(Index(OciHttp.Descriptor(OciHttp.OciManifest, missing, 10))), OciHttp.OciIndex);
        await bad.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_BLOB_UNKNOWN");

        var index = Json(Index(OciHttp.Descriptor(OciHttp.OciManifest, childDigest, child.Length)));
        using var good = await client.PutManifestAsync("manifests/index", "multi", index, OciHttp.OciIndex);
        await good.ExpectAsync(HttpStatusCode.Created);
        using var get = await client.GetAsync("v2/manifests/index/manifests/multi");
        Assert.Equal(OciHttp.OciIndex, get.Content.Headers.ContentType!.MediaType);
        Assert.Equal(index, await get.Content.ReadAsByteArrayAsync());
    }

    [SkippableFact]
    public async Task DockerManifestListIsAccepted()
    {
        var (child, childDigest) = await client.PushImageAsync("manifests/list", "amd64", seed: 6, OciHttp.DockerManifest);
        var list = Json(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.DockerManifestList,
            ["manifests"] = new JsonArray(new JsonObject
            {
                ["mediaType"] = OciHttp.DockerManifest,
                ["digest"] = childDigest,
                ["size"] = child.Length,
                ["platform"] = new JsonObject { ["architecture"] = "amd64", ["os"] = "linux" },
            }),
        });
        using var put = await client.PutManifestAsync("manifests/list", "latest", list, OciHttp.DockerManifestList);
        await put.ExpectAsync(HttpStatusCode.Created);
    }

    [SkippableFact]
    public async Task AcceptHeaderIsHonoured()
    {
        await client.PushImageAsync("manifests/accept", "v1", seed: 7);
        using var dockerOnly = new HttpRequestMessage(HttpMethod.Get, "v2/manifests/accept/manifests/v1");
        dockerOnly.Headers.Accept.ParseAdd(OciHttp.DockerManifest);
        using var refused = await client.SendAsync(dockerOnly);
        await refused.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        using var both = new HttpRequestMessage(HttpMethod.Get, "v2/manifests/accept/manifests/v1");
        both.Headers.Accept.ParseAdd(OciHttp.DockerManifest);
        both.Headers.Accept.ParseAdd(OciHttp.OciManifest);
        using var served = await client.SendAsync(both);
        await served.ExpectAsync(HttpStatusCode.OK);
    }

    [SkippableFact]
    public async Task RetaggingPointsTagAtNewManifest()
    {
        await client.PushImageAsync("manifests/retag", "latest", seed: 8);
        var (_, second) = await client.PushImageAsync("manifests/retag", "latest", seed: 9);
        using var get = await client.GetAsync("v2/manifests/retag/manifests/latest");
        Assert.Equal(second, get.Headers.GetValues("Docker-Content-Digest").Single());
    }

    [SkippableFact]
    public async Task DeleteByTagKeepsManifestAndDeleteByDigestRemovesTags()
    {
        var (_, digest) = await client.PushImageAsync("manifests/delete", "a", seed: 10);
        var manifestBytes = await (await client.GetAsync($"v2/manifests/delete/manifests/{digest}")).Content.ReadAsByteArrayAsync();
        using (var tagB = await client.PutManifestAsync("manifests/delete", "b", manifestBytes, OciHttp.OciManifest)) await tagB.ExpectAsync(HttpStatusCode.Created);

        using (var deleteTag = await client.DeleteAsync("v2/manifests/delete/manifests/a")) await deleteTag.ExpectAsync(HttpStatusCode.Accepted);
        using (var goneTag = await client.GetAsync("v2/manifests/delete/manifests/a")) await goneTag.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using (var byDigest = await client.GetAsync($"v2/manifests/delete/manifests/{digest}")) await byDigest.ExpectAsync(HttpStatusCode.OK);

        using (var deleteDigest = await client.DeleteAsync($"v2/manifests/delete/manifests/{digest}")) await deleteDigest.ExpectAsync(HttpStatusCode.Accepted);
        using (var goneDigest = await client.GetAsync($"v2/manifests/delete/manifests/{digest}")) await goneDigest.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using (var goneB = await client.GetAsync("v2/manifests/delete/manifests/b")) await goneB.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using var again = await client.DeleteAsync($"v2/manifests/delete/manifests/{digest}");
        await again.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
    }

    [SkippableFact]
    public async Task UnknownManifestIsManifestUnknown()
    {
        using var get = await client.GetAsync("v2/manifests/nothing/manifests/latest");
        await get.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "v2/manifests/nothing/manifests/latest"));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }

    [SkippableFact]
    public async Task ContentTypeMustAgreeWithMediaTypeField()
    {
        var (manifest, _) = await client.PushImageAsync("manifests/ctype", "v1", seed: 11);
        var content = new ByteArrayContent(manifest);
        content.Headers.ContentType = new MediaTypeHeaderValue(OciHttp.DockerManifest);
        using var put = await client.PutAsync("v2/manifests/ctype/manifests/v2", content);
        await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "MANIFEST_INVALID");
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class ManifestApiTestsOnFilesystem(RegistryServerFixture fixture) : ManifestApiTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class ManifestApiTestsInMemory(InMemoryRegistryServerFixture fixture) : ManifestApiTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
