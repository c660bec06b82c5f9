using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Repositories;

/// <summary>
/// One repository as the API sees it, in domain terms. Whether a read may fall through to an upstream is the
/// implementation's business (<see cref="ShadowingRepository"/>), so endpoints only parse, call and answer.
/// </summary>
public interface IRepository
{
    RepositoryTarget Target { get; }

    /// <summary>
    /// The manifest a tag or digest names, or null. The client's request is passed on because its Accept header
    /// decides which manifest an upstream is asked for.
    /// </summary>
    Task<FoundManifest?> GetManifestAsync(string reference, bool headOnly, HttpRequest request, CancellationToken cancellationToken);

    /// <summary>Stores a pushed manifest here; references it names may be found wherever this repository reads from.</summary>
    Task<PushedManifest> PutManifestAsync(string reference, byte[] content, string? contentType, CancellationToken cancellationToken);

    /// <summary>Deletes local content only; false when there was none.</summary>
    Task<bool> DeleteManifestAsync(string reference, CancellationToken cancellationToken);

    /// <summary>Where the blob is served from, or null when this repository does not have it.</summary>
    Task<FoundBlob?> GetBlobAsync(Digest digest, CancellationToken cancellationToken);

    /// <summary>Removes the blob from this repository (local links only); false when it had none.</summary>
    Task<bool> DeleteBlobAsync(Digest digest, CancellationToken cancellationToken);

    /// <summary>The repository's tags, sorted, or null when the repository is not known anywhere it reads from.</summary>
    Task<TagList?> ListTagsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Whether this repository, as a mount source, holds the blob as its own content (making it present locally if
    /// it has to be fetched). Bytes the shared store keeps for some other repository never count.
    /// </summary>
    Task<bool> CanLendAsync(Digest digest, CancellationToken cancellationToken);

    /// <summary>Mounts a blob another repository can lend: linked here, no bytes copied. False when it cannot.</summary>
    Task<bool> MountAsync(Digest digest, IRepository from, CancellationToken cancellationToken);
}

/// <summary>A manifest found for a read; Content is null when only its headers are known (an upstream HEAD).</summary>
public sealed record FoundManifest(Digest Digest, string MediaType, long Size, byte[]? Content, string Source);

/// <summary>A tag list and where it came from ("local", "upstream" or "local+upstream").</summary>
public sealed record TagList(IReadOnlyList<string> Tags, string Source);

/// <summary>Where a blob is served from: the local store, or an upstream that streams it to the client.</summary>
public abstract record FoundBlob(Digest Digest, string Source);

/// <summary>Held locally with this size: served from the blob store.</summary>
public sealed record LocalBlob(Digest Digest, long Size, string Source) : FoundBlob(Digest, Source);

/// <summary>
/// Only the upstream has it: the response is written by streaming from there (kept on the way when caching
/// applies), which needs the client's HttpContext, so the decorator hands back how rather than bytes.
/// </summary>
public sealed record UpstreamBlob(Digest Digest, Func<HttpContext, Task> ServeAsync) : FoundBlob(Digest, "upstream");
