using System.Net;
using System.Net.Sockets;
using System.Text;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>Names that are not OCI names never reach storage: no path escapes the storage root.</summary>
public abstract class NameValidationTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    [Theory]
    [InlineData("UPPER/case")]
    [InlineData("a/..%2F..%2Fescape")]
    [InlineData("a//b")]
    [InlineData("-a/b")]
    [InlineData("a_/b")]
    [InlineData("a%2Fb")]
    [InlineData("a/.hidden")]
    [InlineData("a/b%00c")]
    public async Task InvalidNamesAreRejectedForReadsAndWrites(string name)
    {
        using var tags = await client.GetAsync($"v2/{name}/tags/list");
        Assert.True(tags.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{name}: {(int)tags.StatusCode}");
        using var upload = await client.PostAsync($"v2/{name}/blobs/uploads/?digest={OciHttp.Sha256([1])}", new ByteArrayContent([1]));
        Assert.True(upload.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{name}: {(int)upload.StatusCode}");
        await AssertStorageHoldsNoRepositoriesAsync();
    }

    [Fact]
    public async Task InvalidNameGetsNameInvalidError()
    {
        using var response = await client.GetAsync("v2/Bad_Name/tags/list");
        await response.ExpectErrorAsync(HttpStatusCode.BadRequest, "NAME_INVALID");
        using var tooLong = await client.GetAsync($"v2/{new string('a', 256)}/tags/list");
        await tooLong.ExpectErrorAsync(HttpStatusCode.BadRequest, "NAME_INVALID");
    }

    [Fact]
    public async Task RawDotSegmentsDoNotEscape()
    {
        // HttpClient normalises dot segments; a raw request line does not.
        using var socket = new TcpClient();
        await socket.ConnectAsync(fixture.Server.BaseAddress.Host, fixture.Server.BaseAddress.Port);
        var stream = socket.GetStream();
        var request = $"POST /v2/a/../../../tmp/x/blobs/uploads/?digest={OciHttp.Sha256([1])} HTTP/1.1\r\nHost: {fixture.Server.HostPort}\r\nContent-Length: 1\r\nConnection: close\r\n\r\n\u0001";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var reader = new StreamReader(stream);
        var statusLine = await reader.ReadLineAsync();
        Assert.Matches("^HTTP/1.1 (400|404) ", statusLine);
        await AssertStorageHoldsNoRepositoriesAsync();
    }

    [Fact]
    public async Task UnknownEndpointAndMethodGetOciErrors()
    {
        using var unknown = await client.GetAsync("v2/a/b/unknown/thing");
        await unknown.ExpectErrorAsync(HttpStatusCode.NotFound, "NOT_FOUND");
        using var method = await client.PostAsync("v2/a/b/tags/list", null);
        await method.ExpectErrorAsync(HttpStatusCode.MethodNotAllowed, "UNSUPPORTED");
    }

    private async Task AssertStorageHoldsNoRepositoriesAsync()
    {
        Assert.Empty(await fixture.Server.FilesBelowAsync("/repositories"));
        // Nothing written outside the storage root's own folders, whatever the driver.
        Assert.Empty(Directory.EnumerateFileSystemEntries(fixture.Server.StorageRoot).Select(Path.GetFileName).Except(["blobs", "repositories", "tmp", "uploads"]));
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class NameValidationTestsOnFilesystem(RegistryServerFixture fixture) : NameValidationTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class NameValidationTestsInMemory(InMemoryRegistryServerFixture fixture) : NameValidationTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
