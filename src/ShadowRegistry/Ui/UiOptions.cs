namespace ShadowRegistry.Ui;

/// <summary>The operator page (README "Operator page"), configuration section "Ui".</summary>
public sealed class UiOptions
{
    public const string Section = "Ui";

    /// <summary>Serve the page at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Where it is served: an absolute path of one or more segments, without a trailing slash.</summary>
    public string Path { get; set; } = "/ui";

    /// <summary>How long a login lasts (with authentication on).</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Rows of one page of the queue, a repository list or a tag list.</summary>
    public int PageSize { get; set; } = 50;

    /// <summary>How long a measurement of the storage used is shown before it is taken again (in the background).</summary>
    public TimeSpan StorageUsageRefresh { get; set; } = TimeSpan.FromMinutes(5);

    public static bool IsValidPath(string? path) =>
        path is { Length: > 1 } && path[0] == '/' && path[^1] != '/' && !path.Contains("//", StringComparison.Ordinal)
        && !path.StartsWith("/v2", StringComparison.Ordinal) && !path.StartsWith("/api/", StringComparison.Ordinal)
        && path.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '-' or '_' or '.');
}
