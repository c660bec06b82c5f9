using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Changes;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Changes;

/// <summary>
/// When a view's cached records are due, the requests that find it so share one rebuild: a burst of reads through a
/// change with ten changes ahead must not turn into a burst of record reads and overlay walks per request. Under
/// steady traffic no request waits at all: past half its life a view (or an overlay's repository list) is rebuilt
/// in the background while requests go on with the one they have.
/// </summary>
public sealed class ChangeViewCacheTests
{
    /// <summary>Counts the calls for paths that match, and holds them until <see cref="Release"/> while <see cref="Hold"/> is set.</summary>
    private sealed class GatedDriver(IStorageDriver inner, Func<string, bool> watched) : DelegatingStorageDriver(inner)
    {
        private TaskCompletionSource gate = NewGate();
        private int calls;

        public volatile bool Hold;
        public int Calls => Volatile.Read(ref calls);

        public void Release() => gate.TrySetResult();

        public void Reset()
        {
            Interlocked.Exchange(ref calls, 0);
            gate = NewGate();
        }

        private static TaskCompletionSource NewGate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

        private async Task WaitAsync(string path)
        {
            if (!watched(path)) return;
            Interlocked.Increment(ref calls);
            if (Hold) await gate.Task;
        }

        public override async Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken)
        {
            await WaitAsync(path);
            return await Inner.GetVersionedAsync(path, cancellationToken);
        }

        public override async Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken)
        {
            await WaitAsync(path);
            return await Inner.ListAsync(path, startAfter, maxCount, cancellationToken);
        }
    }

    private static async Task<(RegistryServer Server, FakeTimeProvider Clock)> StartAsync(GatedDriver driver)
    {
        var clock = new FakeTimeProvider();
        var server = await RegistryServer.StartAsync(services =>
        {
            services.AddSingleton<TimeProvider>(clock);
            services.AddSingleton<IStorageDriver>(driver);
        }, "--Registry:Storage:Driver", "inmemory", "--Registry:ChangeCacheDuration", "00:00:02");
        return (server, clock);
    }

    private static RepositoryName Name(string value) => RepositoryName.TryParse(value, out var name) ? name : throw new ArgumentException(value);

    /// <summary>Changes c0 … c9 and "last" with all ten ahead; the driver watches the change records.</summary>
    private static async Task<(RegistryServer Server, FakeTimeProvider Clock, GatedDriver Driver, ChangeService Changes, ChangeId Id)> StartWithQueueAsync()
    {
        var driver = new GatedDriver(new InMemoryDriver(), path => path.StartsWith("/changes/", StringComparison.Ordinal) && path.EndsWith("/change", StringComparison.Ordinal));
        var (server, clock) = await StartAsync(driver);
        using var client = server.CreateClient();
        for (var i = 0; i < 10; i++) await client.PutChangeAsync($"c{i}", HttpStatusCode.Created);
        await client.PutChangeAsync("last", HttpStatusCode.Created, ahead: [.. Enumerable.Range(0, 10).Select(i => $"c{i}")]);
        return (server, clock, driver, server.Services.GetRequiredService<ChangeService>(), ChangeId.Parse("last"));
    }

    /// <summary>Change "a" holding team/app, whose overlay entry has just been walked; the driver watches the overlay's listings.</summary>
    private static async Task<(RegistryServer Server, FakeTimeProvider Clock, GatedDriver Driver, OverlayRepositories Repositories, RepositoryName App)> StartWithOverlayAsync()
    {
        var driver = new GatedDriver(new InMemoryDriver(), path => path.Contains("/repositories", StringComparison.Ordinal) && path.StartsWith("/changes/", StringComparison.Ordinal));
        var (server, clock) = await StartAsync(driver);
        using var client = server.CreateClient();
        await client.PutChangeAsync("a", HttpStatusCode.Created);
        await client.PushImageAsync("changes/a/team/app", "latest", seed: 1);
        var overlay = (await server.Services.GetRequiredService<ChangeService>().ViewAsync(ChangeId.Parse("a"), CancellationToken.None)).Overlays[0];
        var repositories = server.Services.GetRequiredService<OverlayRepositories>();
        var app = Name("team/app").In(overlay);
        Assert.True(await repositories.MayHoldAsync(app, CancellationToken.None));
        return (server, clock, driver, repositories, app);
    }

    [Fact]
    public async Task ConcurrentRequestsForADueViewShareOneRebuild()
    {
        var (server, clock, driver, changes, id) = await StartWithQueueAsync();
        await using var _ = server;
        var built = await changes.ViewAsync(id, CancellationToken.None);
        Assert.Same(built, await changes.ViewAsync(id, CancellationToken.None)); // cached

        clock.Advance(TimeSpan.FromSeconds(2)); // every record is due
        driver.Reset();
        driver.Hold = true;
        // ViewAsync joins or starts the rebuild before it returns, so once these calls are made, every request is in.
        var waiting = Enumerable.Range(0, 16).Select(_ => changes.ViewAsync(id, CancellationToken.None)).ToList();
        Assert.Equal(1, driver.Calls); // the first record of the one rebuild, held
        driver.Hold = false;
        driver.Release();
        var views = await Task.WhenAll(waiting);
        Assert.All(views, view => Assert.Same(views[0], view));
        Assert.Equal(11, driver.Calls); // each record of the queue read once
        Assert.Equal(["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"], views[0].Ahead.Select(c => c.Id));
    }

    [Fact]
    public async Task AViewRebuiltAfterThisProcessWroteNeverJoinsARebuildStartedBefore()
    {
        var driver = new GatedDriver(new InMemoryDriver(), path => path == "/changes/last/change");
        var (server, clock) = await StartAsync(driver);
        await using var _ = server;
        using var client = server.CreateClient();
        await client.PutChangeAsync("a", HttpStatusCode.Created);
        await client.PutChangeAsync("last", HttpStatusCode.Created);
        var changes = server.Services.GetRequiredService<ChangeService>();
        var id = ChangeId.Parse("last");
        await changes.ViewAsync(id, CancellationToken.None);

        clock.Advance(TimeSpan.FromSeconds(2));
        driver.Reset();
        driver.Hold = true;
        var before = changes.ViewAsync(id, CancellationToken.None); // a rebuild from the old record, held
        driver.Hold = false;
        await client.PutChangeAsync("last", HttpStatusCode.OK, ahead: ["a"]); // reads the record afresh: not held
        // Bounded: joining the held rebuild would wait for the release below.
        var after = await changes.ViewAsync(id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["a"], after.Ahead.Select(c => c.Id));
        driver.Release();
        await before;
    }

    [Fact]
    public async Task ConcurrentQuestionsAboutADueOverlayShareOneWalk()
    {
        var (server, clock, driver, repositories, app) = await StartWithOverlayAsync();
        await using var _ = server;
        var overlay = app.Overlay!;

        clock.Advance(TimeSpan.FromSeconds(2));
        driver.Reset();
        driver.Hold = true;
        var waiting = Enumerable.Range(0, 16).Select(_ => repositories.MayHoldAsync(app, CancellationToken.None)).ToList();
        Assert.Equal(1, driver.Calls); // the walk's first listing, held
        driver.Hold = false;
        driver.Release();
        Assert.All(await Task.WhenAll(waiting), Assert.True);
        Assert.Equal(3, driver.Calls); // one walk: repositories/, team/, team/app/
        Assert.False(await repositories.MayHoldAsync(Name("other").In(overlay), CancellationToken.None));
    }

    [Fact]
    public async Task AViewPastHalfItsLifeIsServedAtOnceAndRebuiltInTheBackground()
    {
        var (server, clock, driver, changes, id) = await StartWithQueueAsync();
        await using var _ = server;
        var built = await changes.ViewAsync(id, CancellationToken.None);

        clock.Advance(TimeSpan.FromSeconds(1.5)); // past half the 2 s: still valid, due for a refresh
        driver.Reset();
        driver.Hold = true;
        var served = Enumerable.Range(0, 16).Select(_ => changes.ViewAsync(id, CancellationToken.None)).ToList();
        Assert.All(served, task => Assert.True(task.IsCompletedSuccessfully)); // none waits for the rebuild
        foreach (var task in served) Assert.Same(built, await task);
        Assert.Equal(1, driver.Calls); // one rebuild started, held at its first record
        driver.Hold = false;
        driver.Release();

        // Where the old view would be due: the rebuilt one is there (or the request joins the rebuild still running).
        clock.Advance(TimeSpan.FromSeconds(0.5));
        var rebuilt = await changes.ViewAsync(id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotSame(built, rebuilt);
        Assert.Equal(11, driver.Calls); // every record read again once
        driver.Reset();
        driver.Hold = true;
        var next = changes.ViewAsync(id, CancellationToken.None);
        Assert.True(next.IsCompletedSuccessfully); // no request waits: the refreshed view lasts until 3.5 s
        Assert.Same(rebuilt, await next);
        Assert.Equal(0, driver.Calls);
        driver.Release();
    }

    [Fact]
    public async Task AnOverlayPastHalfItsLifeIsAnsweredAtOnceAndWalkedInTheBackground()
    {
        var (server, clock, driver, repositories, app) = await StartWithOverlayAsync();
        await using var _ = server;

        clock.Advance(TimeSpan.FromSeconds(1.5));
        driver.Reset();
        driver.Hold = true;
        Assert.True(repositories.TryMayHold(app)); // answered from memory, a walk started
        var asked = repositories.MayHoldAsync(app, CancellationToken.None);
        Assert.True(asked.IsCompletedSuccessfully);
        Assert.True(await asked);
        Assert.Equal(1, driver.Calls); // one walk, held at its first listing
        driver.Hold = false;
        driver.Release();

        clock.Advance(TimeSpan.FromSeconds(0.5)); // the old entry would be due now
        Assert.True(await repositories.MayHoldAsync(app, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(3, driver.Calls); // that one walk: repositories/, team/, team/app/
        Assert.True(repositories.TryMayHold(app)); // the walked entry, from memory
        Assert.Equal(3, driver.Calls);
    }
}
