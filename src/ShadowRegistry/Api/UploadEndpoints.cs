using System.Text.RegularExpressions;
using Serilog;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>Blob upload sessions: monolithic, chunked and cross-repository mount.</summary>
public sealed partial class UploadEndpoints(
    UploadStore uploads,
    BlobStore blobs,
    BlobLinks links,
    TargetResolver targets,
    RepositoryFactory repositories,
    IDiagnosticContext diagnostics,
    ILogger<UploadEndpoints> logger)
{
    /// <summary>POST: mount from another repository, upload monolithically with ?digest=, or open a session.</summary>
    public async Task StartAsync(HttpContext context, RepositoryTarget target)
    {
        var name = target.Writes;
        diagnostics.Set("Repository", name.Value);
        var query = context.Request.Query;
        var ct = context.RequestAborted;

        if (query.TryGetValue("mount", out var mountValue) && !MountPermission.IsDenied(context))
        {
            var mount = RegistryRoutes.ParseDigest(mountValue.ToString());
            diagnostics.Set("Digest", mount.ToString());
            // Only what the source repository itself holds (or its upstream confirms) can be mounted.
            if (RepositoryName.TryParse(query["from"].ToString(), out var fromName)
                && await repositories.For(target).MountAsync(mount, repositories.For(await targets.ResolveAsync(fromName.Value, query["ns"], ct)), ct))
            {
                logger.LogInformation("Mounted {Digest} from {From} into {Repository}", mount, fromName, name);
                BlobCreated(context.Response, target, mount);
                return;
            }
            // Not mountable: the spec's answer is a fresh upload session for the client to push the blob.
        }

        // A bad digest is refused before anything is written.
        if (query.TryGetValue("digest", out var digestValue))
        {
            var digest = RegistryRoutes.ParseDigest(digestValue.ToString());
            diagnostics.Set("Digest", digest.ToString());
            // Monolithic: no session, just a blob writer of its own; on any failure nothing is left behind.
            await using (var writer = await blobs.NewWriterAsync(digest.Algorithm, BlobSource.Upload, ct))
            {
                await StreamCopy.CopyAsync(context.Request.Body, writer, ct);
                await writer.CommitAsync(digest, context.Request.ContentLength, ct);
            }
            await links.LinkAsync(name, digest, ct);
            BlobCreated(context.Response, target, digest);
            return;
        }
        var session = await uploads.StartAsync(name, ct);
        diagnostics.Set("UploadId", session.Id);

        SessionHeaders(context.Response, target, session, 0);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
    }

    /// <summary>PATCH: append one chunk, which must continue exactly where the upload stands.</summary>
    public async Task PatchAsync(HttpContext context, RepositoryTarget target, string id)
    {
        var session = await FindAsync(context, target.Writes, id);
        var rangeStart = ParseContentRange(context.Request, await uploads.SizeAsync(session, context.RequestAborted));
        var size = await uploads.AppendAsync(session, context.Request.Body, rangeStart, context.Request.ContentLength, context.RequestAborted);
        SessionHeaders(context.Response, target, session, size);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
    }

    /// <summary>PUT ?digest=: append the optional last chunk, verify and commit. Returns only once the blob is readable.</summary>
    public async Task FinishAsync(HttpContext context, RepositoryTarget target, string id)
    {
        var name = target.Writes;
        var session = await FindAsync(context, name, id);
        var digestValue = context.Request.Query["digest"].ToString();
        if (digestValue.Length == 0) throw new DigestInvalidException("the digest query parameter is required to finish an upload");
        var digest = RegistryRoutes.ParseDigest(digestValue);
        diagnostics.Set("Digest", digest.ToString());
        var rangeStart = ParseContentRange(context.Request, await uploads.SizeAsync(session, context.RequestAborted));
        await uploads.FinishAsync(session, context.Request.Body, rangeStart, context.Request.ContentLength, digest, context.RequestAborted);
        await links.LinkAsync(name, digest, context.RequestAborted);
        BlobCreated(context.Response, target, digest);
    }

    /// <summary>GET: where the upload stands, so a client can resume.</summary>
    public async Task StatusAsync(HttpContext context, RepositoryTarget target, string id)
    {
        var name = target.Writes;
        var session = await FindAsync(context, name, id);
        SessionHeaders(context.Response, target, session, await uploads.SizeAsync(session, context.RequestAborted));
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    public async Task CancelAsync(HttpContext context, RepositoryTarget target, string id)
    {
        var name = target.Writes;
        var session = await FindAsync(context, name, id);
        await uploads.CancelAsync(session);
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    private async Task<UploadSession> FindAsync(HttpContext context, RepositoryName name, string id)
    {
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("UploadId", id);
        return await uploads.FindAsync(name, id, context.RequestAborted) ?? throw new BlobUploadUnknownException(id);
    }

    /// <summary>
    /// The chunk's start from Content-Range ("start-end", optionally with a "bytes" unit and "/total"), or null
    /// when absent. The range must agree with Content-Length when both are given.
    /// </summary>
    private static long? ParseContentRange(HttpRequest request, long currentSize)
    {
        var header = request.Headers.ContentRange.ToString();
        if (header.Length == 0) return null;
        var match = ContentRangePattern().Match(header);
        if (!match.Success) throw new UploadRangeException(currentSize);
        var start = long.Parse(match.Groups["start"].Value);
        var end = long.Parse(match.Groups["end"].Value);
        if (end < start) throw new UploadRangeException(currentSize);
        if (request.ContentLength is { } length && length != end - start + 1)
            throw new UploadRangeException(currentSize);
        return start;
    }

    private static void SessionHeaders(HttpResponse response, RepositoryTarget target, UploadSession session, long size)
    {
        response.Headers.Location = target.Url($"blobs/uploads/{session.Id}");
        response.Headers["Docker-Upload-UUID"] = session.Id;
        response.Headers.Range = RegistryError.UploadRange(size);
        response.ContentLength = 0;
    }

    private static void BlobCreated(HttpResponse response, RepositoryTarget target, Digest digest)
    {
        response.StatusCode = StatusCodes.Status201Created;
        response.Headers.Location = target.Url($"blobs/{digest}");
        response.Headers["Docker-Content-Digest"] = digest.ToString();
        response.ContentLength = 0;
    }

    [GeneratedRegex(@"^(bytes[ =])?(?<start>[0-9]{1,18})-(?<end>[0-9]{1,18})(/([0-9]{1,18}|\*))?\z", RegexOptions.CultureInvariant)]
    private static partial Regex ContentRangePattern();
}
