namespace ShadowRegistry.Configuration;

/// <summary>Garbage collection, under "Registry:Gc" (docs/gc.md).</summary>
public sealed class GcOptions
{
    /// <summary>Whether the server collects on its own every <see cref="Interval"/>; `ShadowRegistry gc` works either way.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Time between scheduled runs; the first runs one interval after start.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A blob used within this time (upload finished, mounted, checked by a HEAD or a manifest push) is never swept. Must
    /// exceed the longest time a client takes from checking or uploading a blob to pushing the manifest that needs it.
    /// </summary>
    public TimeSpan GracePeriod { get; set; } = TimeSpan.FromHours(2);

    /// <summary>Manifests no tag reaches (directly, as an index child or as a referrer) are removed once this old; null keeps them.</summary>
    public TimeSpan? UntaggedAfter { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Optional: tags of matching base repositories not pushed for a while are removed.</summary>
    public List<TagRetentionRule> TagRetention { get; set; } = [];

    /// <summary>Blobs kept from upstreams (pull-through cache): least recently used go first past this total; null: no limit.</summary>
    public long? CacheMaxBytes { get; set; }

    /// <summary>Cached upstream blobs not used for this long are dropped; null: no limit.</summary>
    public TimeSpan? CacheMaxAge { get; set; }

    /// <summary>
    /// How many storage operations a run has in flight at once (reading repositories, marking, sweeping folders). Its
    /// work is mostly small file operations and their CPU: more than the cores spared from serving pushes and pulls
    /// only takes CPU from them.
    /// </summary>
    public int Parallelism { get; set; } = 4;

    /// <summary>How long a run may hold the store-wide lease that keeps two scheduled runs from doing the same work at once.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How stale a recorded use of a blob may be: a use within this much of the last recorded one is not written again
    /// (HEADs of popular layers would otherwise write on every push). The sweep adds it to the grace period.
    /// </summary>
    public TimeSpan TouchResolution => TimeSpan.FromTicks(Math.Min(GracePeriod.Ticks / 16, TimeSpan.FromMinutes(5).Ticks));
}

/// <summary>One "Registry:Gc:TagRetention:&lt;n&gt;" entry.</summary>
public sealed class TagRetentionRule
{
    /// <summary>Repository patterns as in Auth:Users (`*` within a name component, `**` across), e.g. "ci/**".</summary>
    public List<string> Repositories { get; set; } = [];

    /// <summary>A tag whose last push is older than this goes.</summary>
    public TimeSpan OlderThan { get; set; }
}
