namespace ShadowRegistry.Upstream;

/// <summary>Settings under "Shadow": the upstream registries that local repositories shadow.</summary>
public sealed class ShadowOptions
{
    public const string Section = "Shadow";

    /// <summary>Upstream registries by name (e.g. "docker.io"); the name is also the first component of the local repository name.</summary>
    public Dictionary<string, UpstreamRegistryOptions> Upstreams { get; set; } = new(StringComparer.Ordinal);

    /// <summary>How long a manifest fetched from upstream by tag may be served from memory; zero disables it. By digest it is cached while it fits.</summary>
    public TimeSpan ManifestTagCacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Bytes of upstream manifests kept in memory.</summary>
    public long ManifestCacheBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// Keep a verified copy of every blob pulled through, so the next pull of it is served from local storage.
    /// The blob streams to the client as it is kept; its last piece is held back until the whole blob verifies.
    /// </summary>
    public bool CacheBlobs { get; set; }

    /// <summary>Time allowed for one upstream attempt to answer with headers.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries of idempotent upstream requests after 429, 5xx or connection failures.</summary>
    public int Retries { get; set; } = 3;

    /// <summary>Base delay of the jittered exponential back-off between retries.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Host-level failures, with no success in between, after which an upstream's circuit opens. A connection
    /// failure is host-level by nature; a 5xx, timeout or dropped response only once failures come from
    /// <see cref="BreakAfterRepositories"/> repositories (see <see cref="UpstreamHealth"/>).
    /// </summary>
    public int BreakAfterFailures { get; set; } = 10;

    /// <summary>
    /// Distinct repositories whose 5xx, timeouts or dropped responses it takes before those count against the
    /// upstream's host: fewer may just be broken repositories, which must not block the others.
    /// </summary>
    public int BreakAfterRepositories { get; set; } = 3;

    /// <summary>How long an open circuit refuses requests before trying the upstream again; also how long a failure is remembered.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class UpstreamRegistryOptions
{
    /// <summary>Base URL of the upstream's registry API, e.g. https://registry-1.docker.io.</summary>
    public string Url { get; set; } = "";

    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Requests that name no upstream (a plain mirror) go to the default one.</summary>
    public bool Default { get; set; }

    /// <summary>Single-component names get "library/" prepended (Docker Hub's official images). Defaults to true for docker.io.</summary>
    public bool? OfficialImagesPrefix { get; set; }
}
