using ShadowRegistry.Domain;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Upstream;

/// <summary>Upstream manifest reads through the in-memory cache, concurrent identical reads collapsed into one.</summary>
public sealed class UpstreamManifests(UpstreamClient upstream, UpstreamManifestCache cache, RegistryMetrics metrics)
{
    private readonly SingleFlight<(string Repository, string Reference, bool Head, string Accept), UpstreamManifest?> inFlight =
        new(() => metrics.UpstreamCollapsed("manifest"));

    /// <summary>The manifest and where it came from ("cache" or "upstream"), or (null, _) when the upstream lacks it.</summary>
    public async Task<(UpstreamManifest? Manifest, string Source)> GetAsync(UpstreamRepository repository, string reference, bool headOnly,
        HttpRequest request, CancellationToken cancellationToken)
    {
        if (cache.Get(repository, reference) is { } cached && Domain.MediaTypes.Accepts(request.Headers.Accept, cached.MediaType))
        {
            metrics.UpstreamCache("manifest", hit: true);
            return (cached, "cache");
        }
        metrics.UpstreamCache("manifest", hit: false);
        var accept = UpstreamClient.AcceptedTypes(request);
        var key = (repository.ToString(), reference, headOnly, string.Join(',', accept));
        var manifest = await inFlight.RunAsync(key, () => upstream.GetManifestAsync(repository, reference, headOnly, accept, CancellationToken.None), cancellationToken);
        if (manifest is not null) cache.Put(repository, reference, manifest);
        return (manifest, "upstream");
    }
}
