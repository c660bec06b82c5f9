namespace ShadowRegistry.Changes;

/// <summary>Settings under the "Changes" configuration section (speculative changes).</summary>
public sealed class ChangeOptions
{
    public const string Section = "Changes";

    /// <summary>
    /// The first path component that addresses a change's view: /v2/&lt;prefix&gt;/&lt;id&gt;/&lt;name&gt;/... No repository of the
    /// base namespace can start with this component.
    /// </summary>
    public string PathPrefix { get; set; } = "changes";

    /// <summary>
    /// When set (e.g. "changes.registry.example"), a request to host "&lt;id&gt;.&lt;suffix&gt;" is served through change
    /// &lt;id&gt; at the root path, for clients (Docker's registry-mirrors) whose mirror setting cannot carry a path.
    /// </summary>
    public string? HostSuffix { get; set; }

    /// <summary>Lifetime of a change created without a "ttl".</summary>
    public TimeSpan DefaultTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The longest "ttl" accepted.</summary>
    public TimeSpan MaxTtl { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// How long the record of an expired change is kept (its overlay is removed at the first clean-up): until then a
    /// request through it is told the change expired, not that it is unknown.
    /// </summary>
    public TimeSpan ExpiredRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How often overlays of expired and deleted changes are looked for and removed.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromMinutes(1);
}
