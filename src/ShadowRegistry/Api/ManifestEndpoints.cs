using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

public sealed class ManifestEndpoints(
    RepositoryFactory repositories,
    IOptions<RegistryOptions> options,
    IDiagnosticContext diagnostics)
{
    /// <summary>GET/HEAD: the manifest the repository finds (local first when it shadows an upstream).</summary>
    public async Task GetAsync(HttpContext context, RepositoryTarget target, string reference)
    {
        diagnostics.Set("Repository", target.Local.Value);
        diagnostics.Set("Reference", reference);
        // A reference no manifest can have (OCI conformance: ".INVALID_MANIFEST_NAME") is not there: 404, not 400,
        // and it is never asked of the upstream.
        if (!ManifestService.IsValidReference(reference)) throw new ManifestUnknownException(reference);
        var head = HttpMethods.IsHead(context.Request.Method);
        var found = await repositories.For(target).GetManifestAsync(reference, head, context.Request, context.RequestAborted)
            ?? throw new ManifestUnknownException(reference);
        diagnostics.Set("Source", found.Source);
        diagnostics.Set("Digest", found.Digest.ToString());
        SourceHeader.Set(context.Response, found.Source, target);
        if (!Accepts(context.Request, found.MediaType))
            throw new ManifestUnknownException(reference, found.MediaType);

        var response = context.Response;
        response.ContentType = found.MediaType;
        response.ContentLength = found.Size;
        response.Headers["Docker-Content-Digest"] = found.Digest.ToString();
        response.Headers.ETag = $"\"{found.Digest}\"";
        if (!head && found.Content is not null) await response.Body.WriteAsync(found.Content, context.RequestAborted);
    }

    /// <summary>PUT lands locally, always; the repository decides which references elsewhere it accepts.</summary>
    public async Task PutAsync(HttpContext context, RepositoryTarget target, string reference)
    {
        var name = target.Local;
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Reference", reference);
        var content = await ReadLimitedAsync(context.Request, options.Value.MaxManifestBytes, context.RequestAborted);
        var pushed = await repositories.For(target).PutManifestAsync(reference, content, context.Request.ContentType, context.RequestAborted);
        diagnostics.Set("Digest", pushed.Digest.ToString());

        var response = context.Response;
        response.StatusCode = StatusCodes.Status201Created;
        response.Headers.Location = target.Url($"manifests/{pushed.Digest}");
        response.Headers["Docker-Content-Digest"] = pushed.Digest.ToString();
        if (pushed.Subject is { } subject) response.Headers["OCI-Subject"] = subject.ToString();
        response.ContentLength = 0;
    }

    /// <summary>DELETE acts on local content only: deleting a local tag makes the upstream one visible again.</summary>
    public async Task DeleteAsync(HttpContext context, RepositoryTarget target, string reference)
    {
        var name = target.Local;
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Reference", reference);
        if (!ManifestService.IsValidReference(reference)) throw new ManifestUnknownException(reference);
        if (!await repositories.For(target).DeleteManifestAsync(reference, context.RequestAborted)) throw new ManifestUnknownException(reference);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentLength = 0;
    }

    /// <summary>Reads a manifest body, refusing (413) anything over the limit without reading more than limit + 1 bytes.</summary>
    private static async Task<byte[]> ReadLimitedAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit) throw new ManifestTooLargeException(limit);
        var content = await StreamCopy.ReadLimitedAsync(request.Body, limit, cancellationToken) ?? throw new ManifestTooLargeException(limit);
        if (request.ContentLength is { } length && length != content.Length) throw new SizeInvalidException($"received {content.Length} bytes, expected {length}");
        return content;
    }

    public static bool Accepts(HttpRequest request, string mediaType) => MediaTypes.Accepts(request.Headers.Accept, mediaType);
}
