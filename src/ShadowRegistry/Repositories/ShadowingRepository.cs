using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Repositories;

/// <summary>
/// A local repository that shadows an upstream one. The fall-through policy lives here and only here: what was
/// pushed locally always wins, a local miss is read from the upstream (through its cache and single-flight), pulled
/// blobs are kept, and writes and deletes act on local content only.
/// </summary>
public sealed class ShadowingRepository(LocalRepository local, UpstreamRepository upstream, ShadowingServices services) : IRepository
{
    private readonly BlobStore blobs = services.Blobs;
    private readonly UpstreamClient upstreamClient = services.Client;
    private readonly UpstreamManifests upstreamManifests = services.Manifests;
    private readonly UpstreamReferences upstreamReferences = services.References;
    private readonly UpstreamBlobFetcher fetcher = services.Fetcher;
    private readonly UpstreamBlobForwarder forwarder = services.Forwarder;
    private readonly bool cacheBlobs = services.Options.Value.CacheBlobs;
    private readonly ILogger logger = services.Logger;
    private readonly RegistryMetrics metrics = services.Metrics;

    public RepositoryTarget Target => local.Target;

    /// <summary>A local tag shadows the upstream one; only a local miss asks the upstream.</summary>
    public async Task<FoundManifest?> GetManifestAsync(string reference, bool headOnly, HttpRequest request, CancellationToken cancellationToken)
    {
        if (await local.GetManifestAsync(reference, headOnly, request, cancellationToken) is { } found) return found;
        var (remote, source) = await upstreamManifests.GetAsync(upstream, reference, headOnly, request, cancellationToken);
        return remote is null ? null : new FoundManifest(remote.Digest, remote.MediaType, remote.Size, remote.Content, source);
    }

    /// <summary>
    /// Lands locally, always. References the upstream holds are accepted: a client building FROM an upstream image
    /// skips uploading what a HEAD (falling through) says is there.
    /// </summary>
    public Task<PushedManifest> PutManifestAsync(string reference, byte[] content, string? contentType, CancellationToken cancellationToken) =>
        local.PutManifestAsync(reference, content, contentType, upstreamReferences.For(Target), cancellationToken);

    /// <summary>Deleting a local tag makes the upstream one visible again.</summary>
    public Task<bool> DeleteManifestAsync(string reference, CancellationToken cancellationToken) =>
        local.DeleteManifestAsync(reference, cancellationToken);

    /// <summary>Local link, else the pull-through cache, else bytes already held once the upstream confirms them, else the upstream.</summary>
    public async Task<FoundBlob?> GetBlobAsync(Digest digest, CancellationToken cancellationToken)
    {
        // Its own blob is no cache event; from here on the read is about the upstream's content.
        if (await local.GetBlobAsync(digest, cancellationToken) is { } found) return found;
        if (await local.GetCachedBlobAsync(digest, cancellationToken) is { } cached)
        {
            metrics.UpstreamCache("blob", hit: true);
            return cached;
        }
        if (cacheBlobs && await blobs.GetSizeAsync(digest, cancellationToken) is { } held)
        {
            // The bytes are here already (pushed or cached for another repository). Only the upstream's word that
            // this repository has them makes them this repository's; then keep them instead of downloading again.
            var upstreamSize = await upstreamClient.GetBlobSizeAsync(upstream, digest, cancellationToken);
            if (upstreamSize is null) return null;
            if (upstreamSize == held)
            {
                await local.CacheBlobAsync(digest, cancellationToken);
                metrics.UpstreamCache("blob", hit: true);
                return new LocalBlob(digest, held, "cache");
            }
        }
        metrics.UpstreamCache("blob", hit: false);
        return new UpstreamBlob(digest, context => ServeFromUpstreamAsync(context, digest));
    }

    /// <summary>
    /// Whole-blob GETs are kept while they stream; ranges, HEADs and a second concurrent pull of the same blob are
    /// simply forwarded. A forward of a blob the upstream lacks throws BLOB_UNKNOWN.
    /// </summary>
    private async Task ServeFromUpstreamAsync(HttpContext context, Digest digest)
    {
        if (cacheBlobs && HttpMethods.IsGet(context.Request.Method) && !context.Request.Headers.ContainsKey("Range")
            && await fetcher.TryRelayAsync(upstream, digest, context))
        {
            await local.CacheBlobAsync(digest, CancellationToken.None);
            return;
        }
        if (context.Response.HasStarted) return; // a relay that broke off has already aborted the connection
        await forwarder.ForwardAsync(context, upstream, digest);
    }

    public Task<bool> DeleteBlobAsync(Digest digest, CancellationToken cancellationToken) => local.DeleteBlobAsync(digest, cancellationToken);

    /// <summary>The size of a manifest pushed here locally, or null (the upstream is not asked).</summary>
    public Task<long?> LocalManifestSizeAsync(Digest digest, CancellationToken cancellationToken) => local.ManifestSizeAsync(digest, cancellationToken);

    /// <summary>Local tags merged with the upstream's; the upstream being down must not hide what was pushed here.</summary>
    public async Task<TagList?> ListTagsAsync(CancellationToken cancellationToken)
    {
        var own = await local.ListTagsAsync(cancellationToken);
        try
        {
            var remote = await upstreamClient.GetTagsAsync(upstream, cancellationToken);
            if (remote is null) return own;
            var merged = (own?.Tags ?? []).Union(remote).Order(StringComparer.Ordinal).ToList();
            return new TagList(merged, own is null ? "upstream" : "local+upstream");
        }
        catch (UpstreamUnavailableException e) when (own is not null)
        {
            logger.LogWarning("Tag list of {Repository} served without upstream tags: {Reason}", Target.Local, e.Message);
            return own;
        }
    }

    /// <summary>
    /// Its own local content, or what its upstream confirms, fetched, verified and committed locally first. The
    /// upstream lacking it, or unable to deliver it now, means no: the client then uploads the blob itself.
    /// </summary>
    public async Task<bool> CanLendAsync(Digest digest, CancellationToken cancellationToken)
    {
        if (await local.CanLendAsync(digest, cancellationToken)) return true;
        try
        {
            if (await fetcher.FetchAsync(upstream, digest, cancellationToken) is not null) return true;
            logger.LogInformation("Mount of {Digest} from {From} not possible: the upstream repository does not have it", digest, upstream);
            return false;
        }
        catch (Exception e) when (e is BlobUnknownException or UpstreamUnavailableException or UpstreamBadContentException)
        {
            logger.LogInformation("Mount of {Digest} from {From} not possible: {Reason}", digest, upstream, e.Message);
            return false;
        }
    }

    public Task<bool> MountAsync(Digest digest, IRepository from, CancellationToken cancellationToken) =>
        local.MountAsync(digest, from, cancellationToken);
}

/// <summary>The singletons every <see cref="ShadowingRepository"/> works with, handed over as one.</summary>
public sealed record ShadowingServices(
    BlobStore Blobs,
    UpstreamClient Client,
    UpstreamManifests Manifests,
    UpstreamReferences References,
    UpstreamBlobFetcher Fetcher,
    UpstreamBlobForwarder Forwarder,
    IOptions<ShadowOptions> Options,
    RegistryMetrics Metrics,
    ILogger<ShadowingRepository> Logger);
