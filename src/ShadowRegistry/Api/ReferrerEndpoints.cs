using System.Text.Json;
using Serilog;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>OCI 1.1 referrers API: an image index of the manifests whose subject is the given digest.</summary>
public sealed class ReferrerEndpoints(ReferrerIndex referrers, IDiagnosticContext diagnostics)
{
    /// <summary>Referrers of local content; upstream referrers are not merged in.</summary>
    public async Task ListAsync(HttpContext context, RepositoryTarget target, Digest subject)
    {
        var name = target.Local;
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Digest", subject.ToString());
        IEnumerable<Descriptor> found = await referrers.ListAsync(name, subject, context.RequestAborted);
        var artifactType = context.Request.Query["artifactType"].ToString();
        if (artifactType.Length > 0)
        {
            found = found.Where(d => d.ArtifactType == artifactType);
            context.Response.Headers["OCI-Filters-Applied"] = "artifactType";
        }
        var index = new { schemaVersion = 2, mediaType = MediaTypes.OciIndex, manifests = found.ToList() };
        context.Response.ContentType = MediaTypes.OciIndex;
        await context.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(index, ManifestJson.Options), context.RequestAborted);
    }
}
