using Serilog;
using ShadowRegistry.Domain;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

public sealed class BlobEndpoints(
    RepositoryFactory repositories,
    BlobStore blobs,
    BlobTouches touches,
    IDiagnosticContext diagnostics)
{
    /// <summary>
    /// GET/HEAD a blob from wherever the repository says it is: served from the local store, or streamed from the
    /// upstream the repository shadows.
    /// </summary>
    public async Task GetAsync(HttpContext context, RepositoryTarget target, Digest digest)
    {
        diagnostics.Set("Repository", target.Local.Value);
        diagnostics.Set("Digest", digest.ToString());
        var found = await repositories.For(target).GetBlobAsync(digest, context.RequestAborted) ?? throw new BlobUnknownException(digest);
        diagnostics.Set("Source", found.Source);
        SourceHeader.Set(context.Response, found.Source, target);
        switch (found)
        {
            case LocalBlob local:
                // A HEAD is how a pushing client checks it need not upload: a use, so garbage collection keeps the blob
                // for the manifest that follows (a blob being collected is gone already). Serving a cached upstream
                // blob is a use too, for the cache's least-recently-used order.
                if ((HttpMethods.IsHead(context.Request.Method) || local.Source == "cache")
                    && await touches.TouchAsync(digest, context.RequestAborted) != BlobUse.Present) throw new BlobUnknownException(digest);
                await ServeLocalAsync(context, digest, local.Size);
                break;
            case UpstreamBlob remote:
                await remote.ServeAsync(context);
                break;
            default:
                throw new System.Diagnostics.UnreachableException($"no way to serve a {found.GetType().Name}");
        }
    }

    /// <summary>DELETE removes the blob from this repository; the content stays for other repositories.</summary>
    public async Task DeleteAsync(HttpContext context, RepositoryTarget target, Digest digest)
    {
        diagnostics.Set("Repository", target.Local.Value);
        diagnostics.Set("Digest", digest.ToString());
        if (!await repositories.For(target).DeleteBlobAsync(digest, context.RequestAborted)) throw new BlobUnknownException(digest);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentLength = 0;
    }

    /// <summary>
    /// Streams from the storage driver; Range requests are answered with 206. A driver that can hand out a URL of its
    /// own (an object store's presigned one) sends the client there instead.
    /// </summary>
    private async Task ServeLocalAsync(HttpContext context, Digest digest, long size)
    {
        var response = context.Response;
        response.Headers["Docker-Content-Digest"] = digest.ToString();
        var method = HttpMethods.IsHead(context.Request.Method) ? HttpMethod.Head : HttpMethod.Get;
        if (await blobs.RedirectUrlAsync(digest, method, context.RequestAborted) is { } url)
        {
            response.StatusCode = StatusCodes.Status307TemporaryRedirect;
            response.Headers.Location = url.ToString();
            response.ContentLength = 0;
            return;
        }
        if (HttpMethods.IsHead(context.Request.Method))
        {
            response.ContentType = MediaTypes.OctetStream;
            response.ContentLength = size;
            response.Headers.AcceptRanges = "bytes";
            response.Headers.ETag = $"\"{digest}\"";
            return;
        }
        // Only byte ranges exist for blobs; a Range in any other unit is ignored rather than read as bytes.
        var range = context.Request.Headers.Range.ToString();
        if (range.Length > 0 && !range.TrimStart().StartsWith("bytes=", StringComparison.OrdinalIgnoreCase)) context.Request.Headers.Remove("Range");
        else if (range.Length > 0 && Unsatisfiable(range, size)) throw new BlobRangeNotSatisfiableException(size);
        // The result disposes the stream. Range processing needs a seekable stream, which both drivers give.
        // Last-Modified as a file result has always sent it (and If-Modified-Since / If-Range honour it).
        var modified = (await blobs.StatAsync(digest, context.RequestAborted))?.ModifiedTime;
        Stream stream;
        try
        {
            stream = await blobs.OpenReadAsync(digest, 0, context.RequestAborted);
        }
        catch (Storage.Drivers.PathNotFoundException)
        {
            throw new BlobUnknownException(digest); // deleted since its size was read
        }
        var entityTag = $"\"{digest}\"";
        if (!NeedsFileResult(context.Request))
        {
            await BlobBody.SendAsync(context, stream, size, entityTag, modified);
            return;
        }
        var result = Results.Stream(stream, MediaTypes.OctetStream, lastModified: modified, enableRangeProcessing: true,
            entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue(entityTag));
        await result.ExecuteAsync(context);
    }

    /// <summary>
    /// Range and conditional requests go through the file result, which implements their rules (206, multi-range,
    /// 304, 412, If-Range); a plain GET is a whole-blob 200, sent by <see cref="BlobBody"/>.
    /// </summary>
    private static bool NeedsFileResult(HttpRequest request)
    {
        var headers = request.Headers;
        return headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.Range)
            || headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.IfMatch)
            || headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.IfNoneMatch)
            || headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.IfModifiedSince)
            || headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.IfUnmodifiedSince);
    }

    /// <summary>
    /// A well-formed byte Range none of whose ranges overlaps the blob: answered here with an OCI error body (the file
    /// result would answer 416 with none). Malformed headers are left to it, which ignores them as RFC 9110 says.
    /// </summary>
    private static bool Unsatisfiable(string header, long size)
    {
        if (!Microsoft.Net.Http.Headers.RangeHeaderValue.TryParse(header, out var parsed) || parsed.Ranges.Count == 0) return false;
        foreach (var item in parsed.Ranges)
        {
            if (item.From is { } from && (item.To is null || item.To >= from) && from < size) return false;
            if (item.From is null && item.To > 0 && size > 0) return false;
            if (item.From is { } start && item.To < start) return false; // invalid, so the whole header is ignored
        }
        return true;
    }
}
