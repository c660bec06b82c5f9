using ShadowRegistry.Domain;

namespace ShadowRegistry.Tests.Unit;

public sealed class SingleFlightTests
{
    [Fact]
    public async Task ConcurrentCallsShareOneRunAndLaterCallsRunAgain()
    {
        var flight = new SingleFlight<string, int>();
        var runs = 0;
        var release = new TaskCompletionSource();
        async Task<int> Work()
        {
            Interlocked.Increment(ref runs);
            await release.Task;
            return runs;
        }

        var waiters = Enumerable.Range(0, 20).Select(_ => flight.RunAsync("k", Work, CancellationToken.None)).ToArray();
        release.SetResult();
        Assert.All(await Task.WhenAll(waiters), value => Assert.Equal(1, value));

        Assert.Equal(2, await flight.RunAsync("k", Work, CancellationToken.None));
    }

    [Fact]
    public async Task ACancelledWaiterDoesNotCancelTheOthers()
    {
        var flight = new SingleFlight<string, string>();
        var release = new TaskCompletionSource();
        async Task<string> Work()
        {
            await release.Task;
            return "done";
        }
        using var cancel = new CancellationTokenSource();
        var impatient = flight.RunAsync("k", Work, cancel.Token);
        var patient = flight.RunAsync("k", Work, CancellationToken.None);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient);
        release.SetResult();
        Assert.Equal("done", await patient);
    }

    [Fact]
    public async Task FailuresReachEveryWaiterAndAreNotKept()
    {
        var flight = new SingleFlight<int, int>();
        var attempt = 0;
        Task<int> Work() => ++attempt == 1 ? Task.FromException<int>(new InvalidOperationException("boom")) : Task.FromResult(attempt);
        await Assert.ThrowsAsync<InvalidOperationException>(() => flight.RunAsync(1, Work, CancellationToken.None));
        Assert.Equal(2, await flight.RunAsync(1, Work, CancellationToken.None));
    }

    [Fact]
    public async Task BackgroundWorkIsJoinedByWaitersAndItsFailureIsHandedOver()
    {
        var flight = new SingleFlight<string, string>();
        var release = new TaskCompletionSource();
        var failure = new TaskCompletionSource<Exception>(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        async Task<string> Work()
        {
            Interlocked.Increment(ref runs);
            await release.Task;
            throw new InvalidOperationException("store gone");
        }
        flight.RunInBackground("k", Work, e => failure.TrySetResult(e));
        var waiter = flight.RunAsync("k", Work, CancellationToken.None); // joins the background work
        release.SetResult();
        Assert.Equal("store gone", (await failure.Task.WaitAsync(TimeSpan.FromSeconds(30))).Message);
        await Assert.ThrowsAsync<InvalidOperationException>(() => waiter);
        Assert.Equal(1, runs);
    }
}
