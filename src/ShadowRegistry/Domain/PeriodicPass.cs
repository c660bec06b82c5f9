namespace ShadowRegistry.Domain;

/// <summary>
/// Background work run on a timer of the <see cref="TimeProvider"/> (so tests drive it with a fake clock): one pass
/// at a time, a tick that finds the previous pass still going is skipped rather than piled up, a failure is logged
/// and tried again at the next tick, and stopping waits for a pass in progress so storage does not go away under it.
/// </summary>
public abstract class PeriodicPass(TimeProvider time, ILogger logger) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim running = new(1, 1);
    private ITimer? timer;

    /// <summary>When the first pass is due and the interval after it; null when the work is switched off.</summary>
    protected abstract (TimeSpan Due, TimeSpan Period)? Schedule { get; }

    /// <summary>
    /// Whether the timer's thread waits for the pass it started: then a fake clock's Advance returns only once that
    /// pass is done. Off, the pass runs on its own and the timer thread is free at once.
    /// </summary>
    protected virtual bool TimerWaitsForPass => false;

    /// <summary>What the work is, for the log line of a failed pass ("Garbage collection").</summary>
    protected abstract string Work { get; }

    protected abstract Task RunPassAsync(CancellationToken cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (Schedule is { } schedule)
            timer = time.CreateTimer(_ =>
            {
                var pass = PassAsync();
                if (TimerWaitsForPass) pass.GetAwaiter().GetResult();
            }, null, schedule.Due, schedule.Period);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await stopping.CancelAsync();
        if (timer is not null) await timer.DisposeAsync();
        await running.WaitAsync(cancellationToken);
        running.Release();
    }

    /// <summary>One pass; skipped while the previous one still runs. Public for tests driving a fake clock.</summary>
    public async Task PassAsync()
    {
        if (!await running.WaitAsync(0)) return;
        try
        {
            await RunPassAsync(stopping.Token);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception e)
        {
            // Never out of a timer callback: the next tick tries again.
            logger.LogWarning(e, "{Work} failed; will try again", Work);
        }
        finally
        {
            running.Release();
        }
    }

    public void Dispose()
    {
        timer?.Dispose();
        stopping.Dispose();
        running.Dispose();
        GC.SuppressFinalize(this);
    }
}
