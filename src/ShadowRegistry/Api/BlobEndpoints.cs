using Serilog;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Api;

public sealed class BlobEndpoints(BlobLinks links, BlobStore blobs, IDiagnosticContext diagnostics)
{
    /// <summary>GET/HEAD a blob, streamed from disk; Range requests are answered with 206.</summary>
    public async Task GetAsync(HttpContext context, RepositoryName name, Digest digest)
    {
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Digest", digest.ToString());
        var size = links.GetSize(name, digest) ?? throw RegistryError.BlobUnknown(digest);
        var response = context.Response;
        response.Headers["Docker-Content-Digest"] = digest.ToString();
        if (HttpMethods.IsHead(context.Request.Method))
        {
            response.ContentType = MediaTypes.OctetStream;
            response.ContentLength = size;
            response.Headers.AcceptRanges = "bytes";
            response.Headers.ETag = $"\"{digest}\"";
            return;
        }
        var file = Results.File(blobs.PathOf(digest), MediaTypes.OctetStream, enableRangeProcessing: true,
            entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{digest}\""));
        await file.ExecuteAsync(context);
    }

    /// <summary>DELETE removes the blob from this repository; the content stays for other repositories.</summary>
    public Task DeleteAsync(HttpContext context, RepositoryName name, Digest digest)
    {
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Digest", digest.ToString());
        if (!links.Unlink(name, digest)) throw RegistryError.BlobUnknown(digest);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentLength = 0;
        return Task.CompletedTask;
    }
}
