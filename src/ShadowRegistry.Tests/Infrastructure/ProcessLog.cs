using System.Diagnostics;
using System.Text;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// What a background process (a daemon, an upstream registry) writes to stdout and stderr, kept for failure messages.
/// Bounded: a chatty process must not grow the test's memory without limit.
/// </summary>
public sealed class ProcessLog
{
    private const int MaxChars = 1_000_000;

    private readonly StringBuilder text = new();

    /// <summary>Collects both streams of <paramref name="process"/>; <paramref name="onLine"/> also sees every line. Call before Start.</summary>
    public void Attach(Process process, Action<string>? onLine = null)
    {
        DataReceivedEventHandler handler = (_, e) =>
        {
            if (e.Data is null) return;
            lock (text)
            {
                if (text.Length < MaxChars) text.AppendLine(e.Data);
            }
            onLine?.Invoke(e.Data);
        };
        process.OutputDataReceived += handler;
        process.ErrorDataReceived += handler;
    }

    public override string ToString()
    {
        lock (text) return text.ToString();
    }
}
