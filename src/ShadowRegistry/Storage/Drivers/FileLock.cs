namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// An exclusive lock on a lock file, held across processes sharing the storage root (on Unix, .NET takes flock(2)
/// for FileShare.None), for the few read-modify-writes of metadata. Held for one small file operation, so waiting
/// is a short poll. Lock files stay in place: deleting one could let two holders lock two different files.
/// </summary>
public sealed class FileLock : IAsyncDisposable
{
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(30);

    private readonly FileStream stream;

    private FileLock(FileStream stream) => this.stream = stream;

    public static async Task<FileLock> AcquireAsync(string path, CancellationToken cancellationToken)
    {
        var delay = 1;
        var deadline = Environment.TickCount64 + (long)GiveUpAfter.TotalMilliseconds;
        while (true)
        {
            try
            {
                return new FileLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None));
            }
            catch (IOException e) when (IsHeldElsewhere(e) && Environment.TickCount64 < deadline)
            {
                // Held by another request or process: wait a little, a bit longer each time.
                await Task.Delay(delay, cancellationToken);
                delay = Math.Min(delay * 2, 20);
            }
        }
    }

    /// <summary>flock's EWOULDBLOCK (11 on Linux, 35 on macOS), which .NET reports as a sharing violation.</summary>
    internal static bool IsHeldElsewhere(IOException e) => e.HResult is 11 or 35;

    public ValueTask DisposeAsync() => stream.DisposeAsync();
}
