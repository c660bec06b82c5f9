namespace ShadowRegistry.Observability;

/// <summary>Settings under "Registry:Metrics": whether and where <c>/metrics</c> is served.</summary>
public sealed class MetricsOptions
{
    public const string Section = "Registry:Metrics";

    /// <summary>The path Prometheus scrapes, by its own convention.</summary>
    public const string Path = "/metrics";

    /// <summary>Serve <see cref="Path"/> at all. Off, nothing answers it (the counters still count, at no cost worth saving).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Listen address(es), ';'-separated, of a server of its own that answers only <see cref="Path"/> (e.g. an internal
    /// interface, or a port the firewall keeps to the monitoring network). Empty: <see cref="Path"/> is served on the
    /// registry's own addresses.
    /// </summary>
    public string? Listen { get; set; }

    public IReadOnlyList<string> ListenUrls =>
        (Listen ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Whether the registry's own addresses serve <see cref="Path"/>.</summary>
    public bool OnMainListener => Enabled && ListenUrls.Count == 0;

    public static bool IsValidUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath == "/";
}
