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
    /// <summary>Referrers of local content (through a view, of every layer of it); upstream referrers are not merged in.</summary>
    public async Task ListAsync(HttpContext context, RepositoryTarget target, Digest subject)
    {
        var name = target.Local;
        diagnostics.Set("Repository", name.Value);
        diagnostics.Set("Digest", subject.ToString());
        // Through a view: the referrers of every layer (own overlay, those ahead, the base), each digest once.
        var layers = target.View is { } view ? view.Layers.Select(change => name.In(change.Overlay)).Append(name) : [name];
        var all = new List<Descriptor>();
        foreach (var layer in layers) all.AddRange(await referrers.ListAsync(layer, subject, context.RequestAborted));
        IEnumerable<Descriptor> found = all.DistinctBy(d => d.Digest).OrderBy(d => d.Digest, StringComparer.Ordinal);
        var artifactType = context.Request.Query["artifactType"].ToString();
        if (artifactType.Length > 0)
        {
            found = found.Where(d => d.ArtifactType == artifactType);
            context.Response.Headers["OCI-Filters-Applied"] = "artifactType";
        }
        var index = new ImageIndex(2, MediaTypes.OciIndex, found.ToList());
        context.Response.ContentType = MediaTypes.OciIndex;
        await context.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(index, ManifestJson.Default.ImageIndex), context.RequestAborted);
    }
}
