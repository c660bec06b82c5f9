using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Internal;
using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Upstream manifests kept in memory, bounded in bytes: by digest for as long as they fit (content-addressed, so
/// never stale), by tag only for the configured TTL so an upstream retag shows up soon.
/// </summary>
public sealed class UpstreamManifestCache : IDisposable
{
    private readonly MemoryCache cache;
    private readonly TimeSpan tagTtl;

    public UpstreamManifestCache(IOptions<ShadowOptions> options, TimeProvider time)
    {
        // The tag TTL runs on the registry's clock like every other expiry, not on the cache's own.
        cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.ManifestCacheBytes, Clock = new Clock(time) });
        tagTtl = options.Value.ManifestTagCacheTtl;
    }

    public UpstreamManifest? Get(UpstreamRepository repository, string reference) =>
        cache.TryGetValue(Key(repository, reference), out UpstreamManifest? manifest) ? manifest : null;

    public void Put(UpstreamRepository repository, string reference, UpstreamManifest manifest)
    {
        if (manifest.Content is null) return;
        var isDigest = Digest.TryParse(reference, out _);
        if (!isDigest && tagTtl <= TimeSpan.Zero) return;
        var entry = new MemoryCacheEntryOptions { Size = manifest.Content.Length + 256 };
        if (!isDigest) entry.AbsoluteExpirationRelativeToNow = tagTtl;
        cache.Set(Key(repository, reference), manifest, entry);
        cache.Set(Key(repository, manifest.Digest.ToString()), manifest, new MemoryCacheEntryOptions { Size = manifest.Content.Length + 256 });
    }

    private static string Key(UpstreamRepository repository, string reference) => $"{repository.Registry.Name}/{repository.Name}@{reference}";

    public void Dispose() => cache.Dispose();

    /// <summary>The cache's clock abstraction over the injected <see cref="TimeProvider"/>.</summary>
    private sealed class Clock(TimeProvider time) : ISystemClock
    {
        public DateTimeOffset UtcNow => time.GetUtcNow();
    }
}
