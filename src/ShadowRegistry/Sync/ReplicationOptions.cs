using ShadowRegistry.Auth;

namespace ShadowRegistry.Sync;

/// <summary>Server-side replication (<c>Replication:*</c>): destinations that follow this registry's base namespace.</summary>
public sealed class ReplicationOptions
{
    public const string Section = "Replication";

    /// <summary>By name (used in logs and metric labels).</summary>
    public Dictionary<string, ReplicationDestination> Destinations { get; set; } = new(StringComparer.Ordinal);

    /// <summary>How often every replicated repository is compared and fixed with the sync plan, so a missed event heals.</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Attempts per event (the first included) before it is left to the next reconcile.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Delay before the first retry of a failed event; doubled for each further retry.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Attempts per HTTP request to a destination (429, 5xx and dropped connections are retried).</summary>
    public int RequestAttempts { get; set; } = 3;

    /// <summary>
    /// How the replicator reads this registry (e.g. <c>http://127.0.0.1:5000</c>); by default the first address it
    /// listens on, with a wildcard host read as 127.0.0.1.
    /// </summary>
    public string? SourceUrl { get; set; }

    public bool IsEnabled => Destinations.Count > 0;
}

/// <summary>One replication destination.</summary>
public sealed class ReplicationDestination
{
    /// <summary><c>http(s)://host[:port][/prefix]</c>: repositories are replicated to the same name, under the prefix if one is given.</summary>
    public string Url { get; set; } = "";

    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Repository patterns as in <c>Auth:Users</c> (<c>*</c> within a component, <c>**</c> across); empty means every repository.</summary>
    public List<string> Repositories { get; set; } = [];

    /// <summary>Leave tags only the destination has (and do not propagate tag deletes): publishing into a shared repository.</summary>
    public bool KeepExtra { get; set; }

    /// <summary>Do not verify the destination's TLS certificate.</summary>
    public bool Insecure { get; set; }

    /// <summary>The registry part and the repository prefix of <see cref="Url"/>, or null when it is not such a URL.</summary>
    public (Uri Registry, string Prefix)? Parse()
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Query.Length > 0) return null;
        return (new Uri(uri.GetLeftPart(UriPartial.Authority) + "/"), uri.AbsolutePath.Trim('/'));
    }

    public IReadOnlyList<RepositoryPattern>? Patterns()
    {
        var result = new List<RepositoryPattern>();
        foreach (var text in Repositories)
        {
            if (!RepositoryPattern.TryParse(text, out var pattern)) return null;
            result.Add(pattern);
        }
        return result;
    }
}
