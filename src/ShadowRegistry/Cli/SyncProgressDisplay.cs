using ShadowRegistry.Sync;

namespace ShadowRegistry.Cli;

/// <summary>
/// Shows a sync's progress on standard error. On a terminal: one status line (tags and bytes done, bytes/s), redrawn
/// in place a few times a second and cleared before each log line, so the log stays readable. Otherwise (a pipe, a
/// file, CI): a plain line after each tag. Standard output carries the same log and results either way.
/// </summary>
public sealed class SyncProgressDisplay : IDisposable
{
    private readonly SyncProgress progress;
    private readonly TextWriter output;
    private readonly TextWriter errors;
    private readonly bool terminal;
    private readonly ITimer? timer;
    private readonly Lock gate = new();
    private bool drawn;

    public SyncProgressDisplay(SyncProgress progress, TextWriter output, TextWriter errors, bool terminal, TimeProvider time)
    {
        (this.progress, this.output, this.errors, this.terminal) = (progress, output, errors, terminal);
        if (terminal) timer = time.CreateTimer(_ => Draw(), null, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(250));
        else progress.TagDone += tag =>
        {
            lock (gate) errors.WriteLine($"progress: {tag} done; {progress.Describe()}");
        };
    }

    /// <summary>A log line on standard output, clear of the status line.</summary>
    public void Log(string line)
    {
        lock (gate)
        {
            Clear();
            output.WriteLine(line);
        }
    }

    /// <summary>The last word: the status line gives way to a summary line.</summary>
    public void Finish()
    {
        timer?.Dispose();
        lock (gate)
        {
            Clear();
            errors.WriteLine($"synced {progress.Describe()} in {progress.Elapsed.TotalSeconds:0.0} s");
        }
    }

    private void Draw()
    {
        lock (gate)
        {
            errors.Write($"\r{progress.Describe()}\u001b[K");
            errors.Flush();
            drawn = true;
        }
    }

    private void Clear()
    {
        if (!terminal || !drawn) return;
        errors.Write("\r\u001b[K");
        drawn = false;
    }

    public void Dispose() => timer?.Dispose();
}
