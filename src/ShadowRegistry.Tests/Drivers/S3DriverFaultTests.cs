using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>
/// What the S3 emulator cannot show, against a scripted S3 (WireMock): the conditional-write headers the driver sends
/// and how it reads S3's answers to them (412 lost, 409 ConditionalRequestConflict retried), and throttling (503
/// SlowDown past the SDK's retries) surfacing as a retryable storage failure.
/// </summary>
public sealed class S3DriverFaultTests : IDisposable
{
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly FakeUpstream s3 = FakeUpstream.Start();
    private readonly S3Driver driver;

    public S3DriverFaultTests()
    {
        var options = new S3DriverOptions
        {
            Bucket = "bucket", Endpoint = s3.Url, ForcePathStyle = true, AccessKey = "key", SecretKey = "secret", RootPrefix = "root",
        };
        driver = new S3Driver(S3Driver.Client(options), options);
    }

    private static string Error(string code) =>
        $"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message><RequestId>1</RequestId></Error>";

    [Fact]
    public async Task PutIfAbsentSendsIfNoneMatchAndReadsPreconditionFailedAsTaken()
    {
        s3.Server.Given(Request.Create().WithPath("/bucket/root/tags/latest").UsingPut().WithHeader("If-None-Match", "*"))
            .RespondWith(Response.Create().WithStatusCode(412).WithHeader("Content-Type", "application/xml").WithBody(Error("PreconditionFailed")));
        Assert.False(await driver.PutIfAbsentAsync("/tags/latest", "sha256:a"u8.ToArray(), None));
    }

    [Fact]
    public async Task PutIfVersionMatchesSendsIfMatchAndRetriesAConditionalRequestConflict()
    {
        var path = Request.Create().WithPath("/bucket/root/tags/latest").UsingPut().WithHeader("If-Match", "\"etag-1\"");
        s3.Server.Given(path).InScenario("conflict").WillSetStateTo("retried")
            .RespondWith(Response.Create().WithStatusCode(409).WithHeader("Content-Type", "application/xml").WithBody(Error("ConditionalRequestConflict")));
        s3.Server.Given(path).InScenario("conflict").WhenStateIs("retried")
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("ETag", "\"etag-2\""));
        Assert.True(await driver.PutIfVersionMatchesAsync("/tags/latest", "sha256:b"u8.ToArray(), new StorageVersion("\"etag-1\""), None));
        Assert.Equal(2, s3.CountRequests(r => r.Method == "PUT"));
    }

    [Fact]
    public async Task ConditionalDeleteSendsIfMatchAndAStaleVersionLoses()
    {
        s3.Server.Given(Request.Create().WithPath("/bucket/root/tags/latest").UsingDelete().WithHeader("If-Match", "\"stale\""))
            .RespondWith(Response.Create().WithStatusCode(412).WithHeader("Content-Type", "application/xml").WithBody(Error("PreconditionFailed")));
        Assert.False(await driver.DeleteIfVersionMatchesAsync("/tags/latest", new StorageVersion("\"stale\""), None));
    }

    [Fact]
    public async Task ThrottlingPastTheRetriesIsStorageUnavailable()
    {
        s3.Server.Given(Request.Create().WithPath("/bucket/root/blobs/data").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(503).WithHeader("Content-Type", "application/xml").WithBody(Error("SlowDown")));
        var failure = await Assert.ThrowsAsync<StorageUnavailableException>(() => driver.GetContentAsync("/blobs/data", None));
        Assert.StartsWith("s3: storage unavailable (503 SlowDown)", failure.Message);
        // The SDK retried before giving up.
        Assert.True(s3.CountRequests(r => r.Method == "GET") > 1);
    }

    [Fact]
    public async Task AMissingObjectIsPathNotFound()
    {
        s3.Server.Given(Request.Create().WithPath("/bucket/root/blobs/none").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(404).WithHeader("Content-Type", "application/xml").WithBody(Error("NoSuchKey")));
        await Assert.ThrowsAsync<PathNotFoundException>(() => driver.GetContentAsync("/blobs/none", None));
    }

    public void Dispose()
    {
        driver.Dispose();
        s3.Dispose();
    }
}
