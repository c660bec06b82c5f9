using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;

namespace ShadowRegistry.Api;

public sealed class ManifestEndpoints(ManifestService manifests, IOptions<RegistryOptions> options, IDiagnosticContext diagnostics)
{
    public async Task GetAsync(HttpContext context, RepositoryName name, string reference)
    {
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Reference", reference);
        var manifest = await manifests.GetAsync(name, reference, context.RequestAborted) ?? throw RegistryError.ManifestUnknown(reference);
        diagnostics.Set("Digest", manifest.Digest.ToString());
        if (!Accepts(context.Request, manifest.MediaType))
            throw new RegistryError(404, "MANIFEST_UNKNOWN", $"manifest is of type {manifest.MediaType}, which the Accept header does not include", new { reference });

        var response = context.Response;
        response.ContentType = manifest.MediaType;
        response.ContentLength = manifest.Content.Length;
        response.Headers["Docker-Content-Digest"] = manifest.Digest.ToString();
        response.Headers.ETag = $"\"{manifest.Digest}\"";
        if (!HttpMethods.IsHead(context.Request.Method)) await response.Body.WriteAsync(manifest.Content, context.RequestAborted);
    }

    public async Task PutAsync(HttpContext context, RepositoryName name, string reference)
    {
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Reference", reference);
        var content = await ReadLimitedAsync(context.Request, options.Value.MaxManifestBytes, context.RequestAborted);
        var pushed = await manifests.PutAsync(name, reference, content, context.Request.ContentType, context.RequestAborted);
        diagnostics.Set("Digest", pushed.Digest.ToString());

        var response = context.Response;
        response.StatusCode = StatusCodes.Status201Created;
        response.Headers.Location = $"/v2/{name}/manifests/{pushed.Digest}";
        response.Headers["Docker-Content-Digest"] = pushed.Digest.ToString();
        if (pushed.Subject is { } subject) response.Headers["OCI-Subject"] = subject.ToString();
        response.ContentLength = 0;
    }

    public async Task DeleteAsync(HttpContext context, RepositoryName name, string reference)
    {
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Reference", reference);
        if (!await manifests.DeleteAsync(name, reference, context.RequestAborted)) throw RegistryError.ManifestUnknown(reference);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentLength = 0;
    }

    /// <summary>Reads a manifest body, refusing (413) anything over the limit without reading more than limit + 1 bytes.</summary>
    private static async Task<byte[]> ReadLimitedAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit) throw TooLarge(limit);
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit) throw TooLarge(limit);
            buffer.Write(chunk, 0, read);
        }
        if (request.ContentLength is { } length && length != buffer.Length) throw RegistryError.SizeInvalid($"received {buffer.Length} bytes, expected {length}");
        return buffer.ToArray();
    }

    private static RegistryError TooLarge(int limit) => RegistryError.ManifestInvalid($"manifest exceeds the limit of {limit} bytes", StatusCodes.Status413PayloadTooLarge);

    /// <summary>No Accept header, a wildcard, plain JSON or the manifest's own type: anything else gets no manifest.</summary>
    private static bool Accepts(HttpRequest request, string mediaType)
    {
        var accept = request.Headers.Accept;
        if (accept.Count == 0) return true;
        foreach (var value in accept)
        {
            if (string.IsNullOrWhiteSpace(value)) return true;
            foreach (var part in value.Split(','))
            {
                var type = part.Split(';')[0].Trim();
                if (type.Length == 0 || type is "*/*" or "application/*" or MediaTypes.Json || type == mediaType) return true;
            }
        }
        return false;
    }
}
