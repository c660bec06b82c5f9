using System.Collections.Concurrent;

namespace ShadowRegistry.Domain;

/// <summary>
/// Collapses concurrent calls for the same key into one: when a hundred CI jobs ask for the same upstream manifest,
/// token or blob at once, the upstream sees one request; when a change view's cached records expire under load,
/// one rebuild serves every request waiting for it. The shared work runs without any single caller's
/// cancellation (its own timeouts bound it); each caller stops waiting when its own token is cancelled. Results
/// are not kept: the key is free again the moment the work completes.
/// </summary>
/// <param name="joined">Called when a call joins work already in flight instead of starting its own (for metrics).</param>
public sealed class SingleFlight<TKey, TValue>(Action? joined = null) where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Lazy<Task<TValue>>> inFlight = new();

    public Task<TValue> RunAsync(TKey key, Func<Task<TValue>> work, CancellationToken cancellationToken)
    {
        // Lazy, so only the flight that lands in the dictionary ever runs; comparing it with ours tells a join.
        var mine = new Lazy<Task<TValue>>(() => RunThenForgetAsync(key, work));
        var flight = inFlight.GetOrAdd(key, mine);
        if (!ReferenceEquals(flight, mine)) joined?.Invoke();
        return flight.Value.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Starts (or joins) the work for the key without anyone waiting for it: a refresh ahead of need. A failure is
    /// handed to <paramref name="failed"/> rather than left unobserved.
    /// </summary>
    public void RunInBackground(TKey key, Func<Task<TValue>> work, Action<Exception> failed)
    {
        var flight = RunAsync(key, work, CancellationToken.None);
        if (flight.IsCompleted && !flight.IsFaulted) return;
        flight.ContinueWith(done => failed(done.Exception!.GetBaseException()), CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task<TValue> RunThenForgetAsync(TKey key, Func<Task<TValue>> work)
    {
        try
        {
            return await work();
        }
        finally
        {
            // Only this flight can be under the key until it is removed here.
            inFlight.TryRemove(key, out _);
        }
    }
}
