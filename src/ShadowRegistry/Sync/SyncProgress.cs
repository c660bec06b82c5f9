namespace ShadowRegistry.Sync;

/// <summary>
/// How far a sync has got: tags planned and done (copied, updated or deleted, failed ones included) and blob bytes
/// sent to the destination. Updated by the syncer as it goes; read by whatever shows it.
/// </summary>
public sealed class SyncProgress(TimeProvider time)
{
    private readonly long started = time.GetTimestamp();
    private int planned;
    private int done;
    private long bytes;

    /// <summary>Raised after each tag is done (on the syncing thread).</summary>
    public event Action<string>? TagDone;

    public int TagsPlanned => Volatile.Read(ref planned);
    public int TagsDone => Volatile.Read(ref done);
    public long BytesSent => Interlocked.Read(ref bytes);
    public TimeSpan Elapsed => time.GetElapsedTime(started);

    /// <summary>Bytes per second since the sync began.</summary>
    public double BytesPerSecond => Elapsed.TotalSeconds > 0 ? BytesSent / Elapsed.TotalSeconds : 0;

    public void Planned(int tags) => Interlocked.Add(ref planned, tags);

    public void Sent(long count) => Interlocked.Add(ref bytes, count);

    public void Done(string tag)
    {
        Interlocked.Increment(ref done);
        TagDone?.Invoke(tag);
    }

    /// <summary>"3/10 tags, 12.5 MiB sent, 4.1 MiB/s".</summary>
    public string Describe() => $"{TagsDone}/{TagsPlanned} tags, {Size(BytesSent)} sent, {Size((long)BytesPerSecond)}/s";

    public static string Size(long count) => count switch
    {
        < 1024 => $"{count} B",
        < 1024 * 1024 => $"{count / 1024.0:0.0} KiB",
        < 1024L * 1024 * 1024 => $"{count / (1024.0 * 1024):0.0} MiB",
        _ => $"{count / (1024.0 * 1024 * 1024):0.0} GiB",
    };
}
