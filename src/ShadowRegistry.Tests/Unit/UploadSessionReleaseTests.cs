using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Unit;

/// <summary>
/// A chunk request whose client leaves while the session is being opened must let the session go: found by a CI run
/// where every resumed chunk was refused as busy (416) for good after one such drop.
/// </summary>
public sealed class UploadSessionReleaseTests
{
    [Theory]
    [InlineData("append")]
    [InlineData("finish")]
    public async Task AClientGoneWhileTheSessionIsOpenedLeavesItFreeForTheNextChunk(string step)
    {
        var driver = new LeavesAtMarkerCheck(new InMemoryDriver());
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var metrics = new RegistryMetrics();
        var uploads = new UploadStore(driver,
            new BlobStore(driver, new BlobTouches(driver, Options.Create(new RegistryOptions()), clock), metrics, NullLogger<BlobStore>.Instance),
            new UploadHashStates(), clock, metrics, NullLogger<UploadStore>.Instance);
        Assert.True(RepositoryName.TryParse("leave/early", out var repository));
        var session = await uploads.StartAsync(repository, CancellationToken.None);
        var first = Encoding.ASCII.GetBytes("first chunk ");
        Assert.Equal(first.Length, await uploads.AppendAsync(session, new MemoryStream(first), 0, first.Length, CancellationToken.None));

        // The client goes just as the writer has been taken and the session's marker is being checked.
        using (var client = new CancellationTokenSource())
        {
            driver.Leaving = (client, session.MarkerPath);
            var second = new MemoryStream(Encoding.ASCII.GetBytes("lost"));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => step == "append"
                ? uploads.AppendAsync(session, second, first.Length, 4, client.Token)
                : uploads.FinishAsync(session, second, first.Length, 4, Digest.Parse("sha256:" + new string('0', 64)), client.Token));
            driver.Leaving = null;
        }

        // The client resumes where the session stands: the chunk is taken, not refused as busy.
        var rest = Encoding.ASCII.GetBytes("and the rest");
        var content = first.Concat(rest).ToArray();
        Assert.Equal(first.Length, await uploads.SizeAsync(session, CancellationToken.None));
        await uploads.FinishAsync(session, new MemoryStream(rest), first.Length, rest.Length,
            Digest.Parse("sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content))), CancellationToken.None);
    }

    /// <summary>Cancels the client's token when the session marker is looked at, and so fails that look.</summary>
    private sealed class LeavesAtMarkerCheck(IStorageDriver inner) : DelegatingStorageDriver(inner)
    {
        public (CancellationTokenSource Client, string Marker)? Leaving { get; set; }

        public override Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken)
        {
            if (Leaving is var (client, marker) && path == marker) client.Cancel();
            return base.StatAsync(path, cancellationToken);
        }
    }
}
