using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>
/// Folder syncs deferred to the end of a scope: what is done inside is visible at once, and every folder it changed
/// is synced once at the end. (That a sync reaches the disk cannot be observed here; how many happen can.)
/// </summary>
public sealed class DeferredSyncTests : IDisposable
{
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly string root = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task ChangesInAScopeAreVisibleAtOnceAndEachFolderIsSyncedOnceAtTheEnd()
    {
        var driver = new FilesystemDriver(root);
        for (var i = 0; i < 40; i++) await driver.PutContentAsync($"/a/f{i}", new byte[] { 1 }, None);
        await driver.PutContentAsync("/b/g", new byte[] { 1 }, None);

        var synced = await DeferredSync.RunAsync(async () =>
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, 40), async (i, ct) =>
            {
                await driver.DeleteAsync($"/a/f{i}", ct);
                Assert.False(await driver.FileExistsAsync($"/a/f{i}", ct)); // visible at once
            });
            Assert.True(await driver.PutIfAbsentAsync("/b/h", new byte[] { 2 }, None));
            Assert.Equal([2], await driver.GetContentAsync("/b/h", None));
            await driver.DeleteAsync("/b/g", None);
        });

        Assert.Equal(2, synced); // /a and /b, however many files changed in each
        Assert.Empty(await driver.ListOrEmptyAsync("/a", None));
        Assert.Equal(["h"], await driver.ListOrEmptyAsync("/b", None));
    }

    [Fact]
    public async Task TheScopeEndsWithItsWorkAndDoesNotReachTheCaller()
    {
        var driver = new FilesystemDriver(root);
        await driver.PutContentAsync("/a/f", new byte[] { 1 }, None);
        Assert.Equal(0, await DeferredSync.RunAsync(() => Task.CompletedTask));
        Assert.Equal(1, await DeferredSync.RunAsync(() => driver.DeleteAsync("/a/f", None)));
        // Outside any scope the driver syncs as it goes: a second scope sees nothing of the first.
        await driver.PutContentAsync("/c/f", new byte[] { 1 }, None);
        Assert.Equal(1, await DeferredSync.RunAsync(() => driver.PutContentAsync("/d/f", new byte[] { 1 }, None)));
    }

    [Fact]
    public async Task WorkThatFailsStillHasWhatItDidSyncedAndItsErrorReported()
    {
        var driver = new FilesystemDriver(root);
        await driver.PutContentAsync("/a/f", new byte[] { 1 }, None);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => DeferredSync.RunAsync(async () =>
        {
            await driver.DeleteAsync("/a/f", None);
            throw new InvalidOperationException("the work's own failure");
        }));
        Assert.Equal("the work's own failure", error.Message);
        Assert.False(await driver.FileExistsAsync("/a/f", None));
    }
}
