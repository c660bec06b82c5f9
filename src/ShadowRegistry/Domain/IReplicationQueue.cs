namespace ShadowRegistry.Domain;

/// <summary>
/// Told of every change to the base namespace's tags (pushes, deletes, promotions) and of manifests pushed by digest
/// only (referrers such as signatures and SBOMs), so that configured replication destinations can follow. Calls
/// must return at once and never fail: replication is asynchronous and never holds up or fails the client's request.
/// Overlays (speculative changes) are not reported; their promotion into the base is.
/// </summary>
public interface IReplicationQueue
{
    /// <summary>A tag was set, moved or deleted; whoever replicates reads its current state afresh.</summary>
    void TagChanged(RepositoryName repository, string tag);

    /// <summary>A manifest was pushed by digest without a tag (typically a referrer): copied as content, untagged.</summary>
    void ContentPushed(RepositoryName repository, Digest digest);
}

/// <summary>No replication configured: every report is dropped.</summary>
public sealed class NoReplication : IReplicationQueue
{
    public static readonly NoReplication Instance = new();

    public void TagChanged(RepositoryName repository, string tag)
    {
    }

    public void ContentPushed(RepositoryName repository, Digest digest)
    {
    }
}
