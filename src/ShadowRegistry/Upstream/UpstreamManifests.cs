namespace ShadowRegistry.Upstream;

/// <summary>Upstream manifest reads through the in-memory cache.</summary>
public sealed class UpstreamManifests(UpstreamClient upstream, UpstreamManifestCache cache)
{
    /// <summary>The manifest and where it came from ("cache" or "upstream"), or (null, _) when the upstream lacks it.</summary>
    public async Task<(UpstreamManifest? Manifest, string Source)> GetAsync(UpstreamRepository repository, string reference, bool headOnly,
        HttpRequest request, CancellationToken cancellationToken)
    {
        if (cache.Get(repository, reference) is { } cached && Api.ManifestEndpoints.Accepts(request, cached.MediaType)) return (cached, "cache");
        var manifest = await upstream.GetManifestAsync(repository, reference, headOnly, UpstreamClient.AcceptedTypes(request), cancellationToken);
        if (manifest is not null) cache.Put(repository, reference, manifest);
        return (manifest, "upstream");
    }
}
