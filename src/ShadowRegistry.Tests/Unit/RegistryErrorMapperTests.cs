using System.Text.Json;
using Microsoft.AspNetCore.Http;
using ShadowRegistry.Api;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Tests.Unit;

/// <summary>
/// The documented answer to every domain exception. A new exception type fails here until it has a row, and a row
/// fails until the mapper knows the type: no domain error can reach a client as an accidental 500.
/// </summary>
public sealed class RegistryErrorMapperTests
{
    private static readonly Digest Expected = Digest.Parse("sha256:" + new string('a', 64));
    private static readonly Digest Actual = Digest.Parse("sha256:" + new string('b', 64));

    private sealed record Row(RegistryException Exception, int Status, string Code, string Message, string? Detail, params (string Name, string Value)[] Headers);

    private static readonly Row[] Table =
    [
        new(new BlobUnknownException(Expected), 404, "BLOB_UNKNOWN", "blob unknown to registry", $$"""{"digest":"{{Expected}}"}"""),
        new(new BlobUploadUnknownException("0123"), 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", """{"uuid":"0123"}"""),
        new(new UploadRangeException(10), 416, "BLOB_UPLOAD_INVALID", "content range does not continue the upload", null, ("Range", "0-9")),
        new(new UploadRangeException(0), 416, "BLOB_UPLOAD_INVALID", "content range does not continue the upload", null, ("Range", "0-0")),
        new(new BlobRangeNotSatisfiableException(5), 416, "RANGE_INVALID", "requested range is not satisfiable", """{"size":5}""", ("Content-Range", "bytes */5")),
        new(new DigestInvalidException("provided digest did not match uploaded content", Expected, Actual), 400, "DIGEST_INVALID",
            "provided digest did not match uploaded content", $$"""{"expected":"{{Expected}}","actual":"{{Actual}}"}"""),
        new(new DigestInvalidException("invalid or unsupported digest 'x'"), 400, "DIGEST_INVALID", "invalid or unsupported digest 'x'", null),
        new(new SizeInvalidException("received 1 bytes, expected 2"), 400, "SIZE_INVALID", "received 1 bytes, expected 2", null),
        new(new ManifestBlobUnknownException(Expected), 400, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob or manifest unknown to this repository",
            $$"""{"digest":"{{Expected}}"}"""),
        new(new ManifestInvalidException("manifest must be a JSON object"), 400, "MANIFEST_INVALID", "manifest must be a JSON object", null),
        new(new ManifestTooLargeException(4096), 413, "MANIFEST_INVALID", "manifest exceeds the limit of 4096 bytes", null),
        new(new ManifestUnknownException("latest"), 404, "MANIFEST_UNKNOWN", "manifest unknown", """{"reference":"latest"}"""),
        new(new ManifestUnknownException("latest", MediaTypes.OciIndex), 404, "MANIFEST_UNKNOWN",
            $"manifest is of type {MediaTypes.OciIndex}, which the Accept header does not include", """{"reference":"latest"}"""),
        new(new NameInvalidException("Bad"), 400, "NAME_INVALID", "invalid repository name", """{"name":"Bad"}"""),
        new(new NameUnknownException(RepositoryName.TryParse("ci/app", out var name) ? name : null!), 404, "NAME_UNKNOWN",
            "repository name not known to registry", """{"name":"ci/app"}"""),
        new(new TagInvalidException("-x"), 400, "TAG_INVALID", "invalid tag or reference", """{"reference":"-x"}"""),
        new(new PaginationInvalidException("invalid page size n=-1"), 400, "PAGINATION_NUMBER_INVALID", "invalid page size n=-1", null),
        new(new UpstreamUnavailableException("docker.io", "circuit open"), 503, "UNAVAILABLE", "upstream registry docker.io is unavailable: circuit open", null),
        new(new UpstreamBadContentException("docker.io", "bad digest"), 502, "UNAVAILABLE", "upstream registry docker.io sent invalid content: bad digest", null),
        new(new BlobBeingCollectedException(Expected), 503, "UNAVAILABLE", "blob is being garbage-collected; try again", $$"""{"digest":"{{Expected}}"}"""),
        new(new StorageFullException(new IOException("No space left on device", 28)), 507, "UNAVAILABLE", "registry storage is full; try again later", null),
        new(new ChangeInvalidException("cycle in ahead: a → b → a"), 400, "CHANGE_INVALID", "cycle in ahead: a → b → a", null),
        new(new ChangeUnknownException(ChangeId.Parse("c1")), 404, "NAME_UNKNOWN", "change c1 is unknown", """{"change":"c1","expired":false}"""),
        new(new ChangeUnknownException(ChangeId.Parse("c1"), expired: true), 404, "NAME_UNKNOWN", "change c1 expired", """{"change":"c1","expired":true}"""),
        new(new PromotionConflictException([new PromotionMismatch("app", "latest", null, Expected.ToString())]), 409, "CHANGE_CONFLICT",
            "promotion refused: 1 base tag(s) are not as expected",
            $$"""{"mismatches":[{"repository":"app","tag":"latest","actual":"{{Expected}}"}]}"""),
    ];

    [Fact]
    public void EveryDomainExceptionTypeHasARow()
    {
        var declared = typeof(RegistryException).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(RegistryException)) && !t.IsAbstract)
            .Select(t => t.Name).Order(StringComparer.Ordinal);
        var tabled = Table.Select(row => row.Exception.GetType().Name).Distinct().Order(StringComparer.Ordinal);
        Assert.Equal(declared, tabled);
    }

    [Fact]
    public async Task EveryRowMapsToItsStatusCodeBodyAndHeaders()
    {
        foreach (var row in Table)
        {
            var type = row.Exception.GetType().Name;
            var error = RegistryErrorMapper.TryMap(row.Exception);
            Assert.True(error is not null, $"{type} has no mapping");

            var context = new DefaultHttpContext();
            context.Response.Body = new MemoryStream();
            await error.WriteAsync(context.Response);

            Assert.True(row.Status == context.Response.StatusCode, $"{type}: status {context.Response.StatusCode}, expected {row.Status}");
            context.Response.Body.Position = 0;
            using var body = await JsonDocument.ParseAsync(context.Response.Body);
            var entry = Assert.Single(body.RootElement.GetProperty("errors").EnumerateArray().ToList());
            Assert.Equal(row.Code, entry.GetProperty("code").GetString());
            Assert.Equal(row.Message, entry.GetProperty("message").GetString());
            Assert.Equal(row.Detail, entry.TryGetProperty("detail", out var detail) ? detail.GetRawText() : null);
            foreach (var (header, value) in row.Headers) Assert.Equal(value, context.Response.Headers[header].ToString());
        }
    }

    [Fact]
    public void FullDiskIOExceptionsAreRecognisedThroughWrappers()
    {
        var noSpace = OperatingSystem.IsWindows() ? unchecked((int)0x80070070) : 28;
        Assert.True(StorageFullException.IsCause(new InvalidOperationException("wrapped", new IOException("No space left on device", noSpace))));
        Assert.False(StorageFullException.IsCause(new IOException("Input/output error", 5)));
    }
}
