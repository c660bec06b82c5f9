using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// An object store that fails mid-upload (after the SDK's own retries): the client gets a retryable 503 with an OCI
/// error body, no partial blob becomes visible, and the session resumes from the offset it was last told.
/// </summary>
public sealed class StoreOutageTests
{
    /// <summary>The in-memory driver, whose writers fail part-way through a write while <see cref="Down"/> is set.</summary>
    private sealed class FlakyDriver(IStorageDriver inner) : DelegatingStorageDriver(inner)
    {
        public volatile bool Down;

        public override async Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken) =>
            new FlakyWriter(this, await Inner.WriterAsync(path, append, cancellationToken), path);

        private sealed class FlakyWriter(FlakyDriver driver, IStorageWriter inner, string path) : IStorageWriter
        {
            public long Size => inner.Size;

            public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
            {
                if (!driver.Down)
                {
                    await inner.WriteAsync(data, cancellationToken);
                    return;
                }
                // Half of it reached the store, then the store gave up.
                await inner.WriteAsync(data[..(data.Length / 2)], cancellationToken);
                throw new StorageUnavailableException(driver.Name, path, "503 SlowDown");
            }

            public Task TruncateAsync(long size, CancellationToken cancellationToken) => inner.TruncateAsync(size, cancellationToken);
            public Task CloseAsync(CancellationToken cancellationToken) => inner.CloseAsync(cancellationToken);
            public Task CancelAsync(CancellationToken cancellationToken) => inner.CancelAsync(cancellationToken);
            public Task CommitAsync(CancellationToken cancellationToken) => inner.CommitAsync(cancellationToken);
            public Task CommitToAsync(string destinationPath, CancellationToken cancellationToken) => inner.CommitToAsync(destinationPath, cancellationToken);
            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }

    private static HttpRequestMessage Patch(Uri location, byte[] content, int offset, int length)
    {
        var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content, offset, length) };
        patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{offset + length - 1}");
        return patch;
    }

    [Fact]
    public async Task AStoreFailingMidChunkGives503AndTheSessionResumesFromTheToldOffset()
    {
        var driver = new FlakyDriver(new InMemoryDriver());
        await using var server = await RegistryServer.StartAsync(services => services.AddSingleton<IStorageDriver>(driver), "--Registry:Storage:Driver", "inmemory");
        using var client = server.CreateClient();
        var content = OciHttp.RandomBytes(200_000, 95);
        var digest = OciHttp.Sha256(content);

        using var start = await client.PostAsync("v2/outage/app/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        using (var first = await client.SendAsync(Patch(location, content, 0, 50_000))) await first.ExpectAsync(HttpStatusCode.Accepted);

        driver.Down = true;
        using (var failed = await client.SendAsync(Patch(location, content, 50_000, 100_000)))
        {
            await failed.ExpectErrorAsync(HttpStatusCode.ServiceUnavailable, "UNAVAILABLE");
            Assert.NotNull(failed.Headers.RetryAfter);
        }
        driver.Down = false;

        // Only what the client was told it has: the half-written chunk was taken back.
        using (var status = await client.GetAsync(location))
        {
            await status.ExpectAsync(HttpStatusCode.NoContent);
            Assert.Equal("0-49999", status.Headers.GetValues("Range").Single());
        }
        using (var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/outage/app/blobs/{digest}")))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);

        using (var again = await client.SendAsync(Patch(location, content, 50_000, 100_000))) await again.ExpectAsync(HttpStatusCode.Accepted);
        using (var put = new HttpRequestMessage(HttpMethod.Put, OciHttp.WithQuery(location, $"digest={digest}"))
        {
            Content = new ByteArrayContent(content, 150_000, 50_000),
        })
        using (var finished = await client.SendAsync(put))
        {
            await finished.ExpectAsync(HttpStatusCode.Created);
        }
        using var get = await client.GetAsync($"v2/outage/app/blobs/{digest}");
        await get.ExpectAsync(HttpStatusCode.OK);
        Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
    }
}
