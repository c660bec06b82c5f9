using System.Net;
using System.Text.Json;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// References, names and headers that only look valid: a trailing line break, a reference no manifest can have, a
/// Range in another unit. Each of these was accepted or mishandled before the grammars were anchored with \z.
/// </summary>
public abstract class MalformedReferenceTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    [Theory]
    [InlineData("evil%0A")]
    [InlineData("evil%0D")]
    [InlineData("evil%0D%0A")]
    [InlineData("evil%00")]
    public async Task TagWithTrailingControlCharacterIsNeverStored(string tag)
    {
        var (manifest, _) = await client.PushImageAsync("refs/newline", "good", seed: 21);
        using var put = await client.PutManifestAsync("refs/newline", tag, manifest, OciHttp.OciManifest);
        // Kestrel itself refuses a NUL in the path (400 without a body); the others reach the tag grammar.
        if (tag.EndsWith("%00")) Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        else await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "TAG_INVALID");
        using var list = await client.GetAsync("v2/refs/newline/tags/list");
        await list.ExpectAsync(HttpStatusCode.OK);
        using var body = JsonDocument.Parse(await list.Content.ReadAsStringAsync());
        Assert.Equal(["good"], body.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(["good"], await fixture.Server.ChildrenAsync("/repositories/refs/newline/_manifests/tags"));
    }

    [Fact]
    public async Task RouteWithTrailingNewlineIsNotAnEndpoint()
    {
        await client.PushImageAsync("refs/route", "v1", seed: 22);
        using var list = await client.GetAsync("v2/refs/route/tags/list%0A");
        await list.ExpectErrorAsync(HttpStatusCode.NotFound, "NOT_FOUND");
    }

    [Fact]
    public async Task DigestWithTrailingNewlineIsInvalid()
    {
        var digest = await client.PushBlobAsync("refs/digest", OciHttp.RandomBytes(100, 23));
        using var ok = await client.GetAsync($"v2/refs/digest/blobs/{digest}");
        await ok.ExpectAsync(HttpStatusCode.OK);
        using var get = await client.GetAsync($"v2/refs/digest/blobs/{digest}%0A");
        await get.ExpectErrorAsync(HttpStatusCode.BadRequest, "DIGEST_INVALID");
        using var manifest = await client.GetAsync($"v2/refs/digest/manifests/{digest}%0A");
        await manifest.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
    }

    [Theory]
    [InlineData(".INVALID_MANIFEST_NAME")]
    [InlineData("-dash")]
    [InlineData("sha256:short")]
    [InlineData("md5:0123456789abcdef0123456789abcdef")]
    public async Task ReadOfAnImpossibleReferenceIsManifestUnknown(string reference)
    {
        var (manifest, _) = await client.PushImageAsync("refs/impossible", "v1", seed: 24);
        using var get = await client.GetAsync($"v2/refs/impossible/manifests/{reference}");
        await get.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/refs/impossible/manifests/{reference}"));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        using var delete = await client.DeleteAsync($"v2/refs/impossible/manifests/{reference}");
        await delete.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        if (!reference.Contains(':'))
        {
            using var put = await client.PutManifestAsync("refs/impossible", reference, manifest, OciHttp.OciManifest);
            await put.ExpectErrorAsync(HttpStatusCode.BadRequest, "TAG_INVALID");
        }
    }

    [Theory]
    [InlineData("items=0-4")]
    [InlineData("lines=0-4")]
    [InlineData("bytes 0-4")]
    public async Task RangeInAnotherUnitIsIgnored(string range)
    {
        var content = OciHttp.RandomBytes(1000, 25);
        var digest = await client.PushBlobAsync("refs/range", content);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/refs/range/blobs/{digest}");
        request.Headers.TryAddWithoutValidation("Range", range);
        using var response = await client.SendAsync(request);
        // Ignored means the whole blob (README): a 416 would be refusing it, not ignoring it.
        await response.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content, await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task BytesRangeStillGetsPartialContent()
    {
        var content = OciHttp.RandomBytes(1000, 26);
        var digest = await client.PushBlobAsync("refs/range", content);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/refs/range/blobs/{digest}");
        request.Headers.TryAddWithoutValidation("Range", "bytes=10-19");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal(content[10..20], await response.Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData("0-99999999999999999999")]
    [InlineData("0-3/4 trailing")]
    [InlineData("items 0-3")]
    public async Task ContentRangeThatIsNotAByteRangeIsRefused(string contentRange)
    {
        using var start = await client.PostAsync("v2/refs/chunk/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        using var patch = new HttpRequestMessage(HttpMethod.Patch, start.Headers.Location) { Content = new ByteArrayContent([1, 2, 3, 4]) };
        patch.Content.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        using var response = await client.SendAsync(patch);
        Assert.True(response.StatusCode is HttpStatusCode.RequestedRangeNotSatisfiable or HttpStatusCode.BadRequest, $"{(int)response.StatusCode}");
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class MalformedReferenceTestsOnFilesystem(RegistryServerFixture fixture) : MalformedReferenceTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class MalformedReferenceTestsInMemory(InMemoryRegistryServerFixture fixture) : MalformedReferenceTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
