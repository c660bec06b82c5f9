using Azure.Storage;
using Azure.Storage.Blobs;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>
/// What Azurite cannot show, against a scripted Blob service (WireMock): Azurite copies at once, while Azure may keep
/// a copy pending and then refuses a second copy onto the same blob with 409 PendingCopyOperation.
/// </summary>
public sealed class AzureDriverFaultTests : IDisposable
{
    private const string Account = "devstoreaccount1";
    private const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    // The emulator's address is localhost, not an IP: the SDK reads the first path segment as the container.
    private const string Source = "/container/root/uploads/u1/data";
    private const string Destination = "/container/root/blobs/sha256/ab/abcd/data";

    private readonly FakeUpstream azure = FakeUpstream.Start();
    private readonly AzureBlobDriver driver;

    public AzureDriverFaultTests()
    {
        var container = new BlobContainerClient(new Uri($"{azure.Url}/container"), new StorageSharedKeyCredential(Account, Key));
        driver = new AzureBlobDriver(container, "root");
    }

    public void Dispose() => azure.Dispose();

    private static IResponseBuilder Blob(string? copyStatus = null)
    {
        var response = Response.Create().WithStatusCode(200)
            .WithHeader("Content-Length", "4").WithHeader("ETag", "\"0x1\"").WithHeader("Last-Modified", "Wed, 02 Dec 2026 18:00:00 GMT")
            .WithHeader("x-ms-blob-type", "BlockBlob");
        return copyStatus is null ? response : response.WithHeader("x-ms-copy-id", "c1").WithHeader("x-ms-copy-status", copyStatus);
    }

    private static IRequestBuilder Copy() => Request.Create().WithPath(Destination).UsingPut().WithHeader("x-ms-copy-source", "*");

    [Fact]
    public async Task ACopyOntoABlobWithAnotherCopyPendingWaitsForItToEndAndThenCopies()
    {
        azure.Server.Given(Request.Create().WithPath(Source).UsingHead()).RespondWith(Blob());
        azure.Server.Given(Copy()).InScenario("copy").WillSetStateTo("refused")
            .RespondWith(Response.Create().WithStatusCode(409).WithHeader("x-ms-error-code", "PendingCopyOperation")
                .WithHeader("Content-Type", "application/xml")
                .WithBody("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>PendingCopyOperation</Code><Message>There is currently a pending copy operation.</Message></Error>"));
        azure.Server.Given(Request.Create().WithPath(Destination).UsingHead()).InScenario("copy").WhenStateIs("refused").WillSetStateTo("polled")
            .RespondWith(Blob("pending"));
        azure.Server.Given(Request.Create().WithPath(Destination).UsingHead()).InScenario("copy").WhenStateIs("polled").WillSetStateTo("ended")
            .RespondWith(Blob("success"));
        azure.Server.Given(Copy()).InScenario("copy").WhenStateIs("ended").WillSetStateTo("copied")
            .RespondWith(Response.Create().WithStatusCode(202).WithHeader("ETag", "\"0x2\"").WithHeader("Last-Modified", "Wed, 02 Dec 2026 18:00:01 GMT")
                .WithHeader("x-ms-copy-id", "c2").WithHeader("x-ms-copy-status", "success"));
        azure.Server.Given(Request.Create().WithPath(Destination).UsingHead()).InScenario("copy").WhenStateIs("copied").RespondWith(Blob("success"));
        azure.Server.Given(Request.Create().WithPath(Source).UsingDelete()).RespondWith(Response.Create().WithStatusCode(202));

        await driver.MoveAsync("/uploads/u1/data", "/blobs/sha256/ab/abcd/data", CancellationToken.None);

        Assert.Equal(2, azure.CountRequests(r => r.Method == "PUT" && r.Path == Destination));
        // Polled until the other copy ended, then once for its own (the SDK leaves that to the caller).
        Assert.Equal(3, azure.CountRequests(r => r.Method == "HEAD" && r.Path == Destination));
        Assert.Equal(1, azure.CountRequests(r => r.Method == "DELETE" && r.Path == Source));
    }

    [Fact]
    public async Task AnOwnCopyThatEndsFailedIsAStorageFailureAndKeepsTheSource()
    {
        azure.Server.Given(Request.Create().WithPath(Source).UsingHead()).RespondWith(Blob());
        azure.Server.Given(Copy()).RespondWith(Response.Create().WithStatusCode(202).WithHeader("ETag", "\"0x2\"")
            .WithHeader("Last-Modified", "Wed, 02 Dec 2026 18:00:01 GMT").WithHeader("x-ms-copy-id", "c2").WithHeader("x-ms-copy-status", "pending"));
        azure.Server.Given(Request.Create().WithPath(Destination).UsingHead()).RespondWith(Blob("failed"));

        var failure = await Assert.ThrowsAsync<StorageUnavailableException>(() => driver.MoveAsync("/uploads/u1/data", "/blobs/sha256/ab/abcd/data", CancellationToken.None));
        Assert.Contains("ended Failed", failure.Message);
        Assert.Equal(0, azure.CountRequests(r => r.Method == "DELETE"));
    }
}
