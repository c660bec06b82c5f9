using System.Text.Json;
using Microsoft.Extensions.Options;
using ShadowRegistry.Api;
using ShadowRegistry.Changes;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Ui;

/// <summary>A live change as the queue draws it: its place, the stack it reads through, and what it holds.</summary>
public sealed record QueueEntry(ChangeRecord Change, int Depth, IReadOnlyList<string> Stack, IReadOnlyList<SkippedChange> Skipped);

/// <summary>A tag of a change with what the change page shows beside it.</summary>
public sealed record ChangeTagRow(ChangeTag Tag, long Size, DateTimeOffset? PushedAt, string? BaseDigest);

/// <summary>What a name typed on the change page resolves to through the change's view.</summary>
public sealed record Resolution(string Repository, string Reference, string? Digest, string? MediaType, long Size, string? Layer, string? Error);

/// <summary>One descriptor of a manifest, with the platform when it is an index entry.</summary>
public sealed record ManifestPart(string MediaType, string Digest, long Size, string? Platform, string? ArtifactType);

/// <summary>A manifest as the detail page shows it.</summary>
public sealed record ManifestDetail(string Repository, string Reference, string Digest, string MediaType, long Size, string Layer,
    ManifestPart? Config, IReadOnlyList<ManifestPart> Layers, IReadOnlyList<ManifestPart> Manifests, IReadOnlyList<ManifestPart> Referrers,
    IReadOnlyDictionary<string, string> Annotations, IReadOnlyDictionary<string, string> ConfigFacts);

/// <summary>
/// Reads what the pages show, through the same services the API uses (changes, views, tags, catalog, referrers):
/// the UI adds no storage logic of its own.
/// </summary>
public sealed class UiData(
    ChangeService changes,
    TargetResolver targets,
    RepositoryFactory repositories,
    TagStore tags,
    ManifestRevisions revisions,
    BlobStore blobs,
    ReferrerIndex referrers,
    RepositoryCatalog catalog,
    IOptions<ChangeOptions> changeOptions)
{
    /// <summary>Every live change in queue order: a change comes after every live change it reads through, then by age and id.</summary>
    public async Task<IReadOnlyList<QueueEntry>> QueueAsync(IReadOnlyDictionary<string, string> labels, CancellationToken cancellationToken)
    {
        var live = await changes.ListAsync(new Dictionary<string, string>(), cancellationToken);
        var byId = live.ToDictionary(c => c.Id, StringComparer.Ordinal);
        var depths = new Dictionary<string, int>(StringComparer.Ordinal);
        int Depth(ChangeRecord change, int guard)
        {
            if (depths.TryGetValue(change.Id, out var known)) return known;
            // Cycles are refused on write; the guard keeps a cycle made by racing writers from recursing forever.
            var depth = guard > 64 ? 0 : change.Ahead.Select(a => byId.TryGetValue(a, out var other) ? Depth(other, guard + 1) + 1 : 0).DefaultIfEmpty(0).Max();
            return depths[change.Id] = depth;
        }
        var result = new List<QueueEntry>();
        foreach (var change in live)
        {
            if (!labels.All(pair => change.Labels.TryGetValue(pair.Key, out var value) && value == pair.Value)) continue;
            var stack = new List<string> { change.Id };
            var skipped = new List<SkippedChange>();
            foreach (var ahead in change.Ahead)
            {
                if (byId.ContainsKey(ahead)) stack.Add(ahead);
                else skipped.Add(new SkippedChange(ahead, "gone"));
            }
            result.Add(new QueueEntry(change, Depth(change, 0), stack, skipped));
        }
        result.Sort((a, b) => a.Depth != b.Depth ? a.Depth.CompareTo(b.Depth)
            : a.Change.CreatedAt != b.Change.CreatedAt ? a.Change.CreatedAt.CompareTo(b.Change.CreatedAt)
            : string.CompareOrdinal(a.Change.Id, b.Change.Id));
        return result;
    }

    public Task<IReadOnlyList<ChangeRecord>> LiveAsync(CancellationToken cancellationToken) =>
        changes.ListAsync(new Dictionary<string, string>(), cancellationToken);

    /// <summary>The tags of a change, counted against the live changes.</summary>
    public Task<IReadOnlyList<ChangeTag>> TagsAsync(ChangeRecord change, IReadOnlyList<ChangeRecord> live, CancellationToken cancellationToken) =>
        changes.TagsAsync(change, live, cancellationToken);

    public Task<ChangeView> ViewAsync(ChangeId id, CancellationToken cancellationToken) => changes.ViewAsync(id, cancellationToken);

    public Task<ChangeRecord> ChangeAsync(ChangeId id, CancellationToken cancellationToken) => changes.GetLiveAsync(id, cancellationToken, fresh: true);

    /// <summary>The change's tags with their image size, when each was pushed, and what the base holds under the same name.</summary>
    public async Task<IReadOnlyList<ChangeTagRow>> ChangeTagsAsync(ChangeRecord change, CancellationToken cancellationToken)
    {
        var rows = new List<ChangeTagRow>();
        foreach (var tag in await changes.TagsAsync(change, await LiveAsync(cancellationToken), cancellationToken))
        {
            var repository = RepositoryName.TryParse(tag.Repository, out var name) ? name : throw new NameInvalidException(tag.Repository);
            var scoped = repository.In(change.Overlay);
            var digest = Digest.Parse(tag.Digest);
            rows.Add(new ChangeTagRow(tag, await ImageSizeAsync(scoped, digest, cancellationToken), await tags.PushedAtAsync(scoped, tag.Tag, cancellationToken),
                (await tags.ResolveAsync(repository, tag.Tag, cancellationToken))?.ToString()));
        }
        return rows;
    }

    /// <summary>The manifest and the blobs it references, as stored (0 for content this repository does not hold).</summary>
    private async Task<long> ImageSizeAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        var revision = await revisions.GetAsync(repository, digest, cancellationToken);
        var content = revision is null ? null : await blobs.TryReadAllBytesAsync(digest, cancellationToken);
        if (revision is null || content is null) return 0;
        var parsed = ManifestParser.Parse(content, revision.MediaType);
        return content.Length + parsed.Blobs.Sum(b => b.Size) + parsed.Manifests.Sum(m => m.Size);
    }

    /// <summary>
    /// Resolves "name[:tag|@digest]" as a job reading through <paramref name="change"/> (or the base, when null) would:
    /// which manifest, and which layer answered. Failures (an unknown name, an upstream down) are part of the answer.
    /// </summary>
    public async Task<Resolution> ResolveAsync(ChangeId? change, string typed, CancellationToken cancellationToken)
    {
        var (name, reference) = SplitReference(typed.Trim());
        try
        {
            var target = await TargetAsync(change, name, cancellationToken);
            var found = await repositories.For(target).GetManifestAsync(reference, headOnly: false, ManifestRequest(), cancellationToken);
            return found is null
                ? new Resolution(name, reference, null, null, 0, null, "no manifest: not in the change, the changes ahead, the base or an upstream")
                : new Resolution(name, reference, found.Digest.ToString(), found.MediaType, found.Size, SourceHeader.Describe(found.Source, target), null);
        }
        catch (Exception e) when (e is RegistryException or Api.RegistryError or HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return new Resolution(name, reference, null, null, 0, null, e.Message);
        }
    }

    private Task<Upstream.RepositoryTarget> TargetAsync(ChangeId? change, string name, CancellationToken cancellationToken) =>
        targets.ResolveAsync(change is null ? name : $"{changeOptions.Value.PathPrefix}/{change}/{name}", null, cancellationToken);

    /// <summary>The manifest a name and reference lead to (through a change when given), taken apart for the detail page.</summary>
    public async Task<ManifestDetail?> ManifestAsync(ChangeId? change, string name, string reference, CancellationToken cancellationToken)
    {
        var target = await TargetAsync(change, name, cancellationToken);
        var found = await repositories.For(target).GetManifestAsync(reference, headOnly: false, ManifestRequest(), cancellationToken);
        if (found?.Content is null) return null;
        ManifestPart? config = null;
        var layers = new List<ManifestPart>();
        var manifests = new List<ManifestPart>();
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
        var facts = new Dictionary<string, string>(StringComparer.Ordinal);
        using (var document = JsonDocument.Parse(found.Content))
        {
            var root = document.RootElement;
            if (root.TryGetProperty("config", out var configElement)) config = Part(configElement);
            if (root.TryGetProperty("layers", out var layerArray) && layerArray.ValueKind == JsonValueKind.Array)
                layers.AddRange(layerArray.EnumerateArray().Select(Part));
            if (root.TryGetProperty("manifests", out var manifestArray) && manifestArray.ValueKind == JsonValueKind.Array)
                manifests.AddRange(manifestArray.EnumerateArray().Select(Part));
            ReadStrings(root, "annotations", annotations);
        }
        if (config is not null && Digest.TryParse(config.Digest, out var configDigest) && config.Size <= 1024 * 1024
            && await blobs.TryReadAllBytesAsync(configDigest, cancellationToken) is { } configContent)
        {
            try
            {
                using var document = JsonDocument.Parse(configContent);
                foreach (var key in new[] { "architecture", "os", "variant", "created", "author" })
                    if (document.RootElement.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String) facts[key] = value.GetString()!;
            }
            catch (JsonException)
            {
                // An artifact's config need not be JSON: the page lists what it can.
            }
        }
        // Referrers are indexed in the layer that holds them: the change's own overlay first, then the base.
        var referrerList = new List<ManifestPart>();
        var places = new List<RepositoryName>();
        if (target.View is { } view) places.AddRange(view.Overlays.Select(o => target.Local.In(o)));
        places.Add(target.Local);
        foreach (var place in places)
            foreach (var referrer in await referrers.ListAsync(place, found.Digest, cancellationToken))
                if (referrerList.All(r => r.Digest != referrer.Digest))
                    referrerList.Add(new ManifestPart(referrer.MediaType, referrer.Digest, referrer.Size, null, referrer.ArtifactType));
        return new ManifestDetail(name, reference, found.Digest.ToString(), found.MediaType, found.Size, SourceHeader.Describe(found.Source, target),
            config, layers, manifests, referrerList, annotations, facts);
    }

    /// <summary>Base repositories whose name contains <paramref name="search"/> (all when empty), a page after <paramref name="after"/>.</summary>
    public async Task<(IReadOnlyList<string> Page, bool More)> RepositoriesAsync(string search, string? after, int pageSize, Func<string, bool> visible,
        CancellationToken cancellationToken)
    {
        var all = await catalog.ListAsync(cancellationToken);
        var start = 0;
        if (!string.IsNullOrEmpty(after))
        {
            // The catalog is sorted ordinally: the page starts right after the cursor, found by binary search.
            var index = Array.BinarySearch(all as string[] ?? [.. all], after, StringComparer.Ordinal);
            start = index >= 0 ? index + 1 : ~index;
        }
        var page = new List<string>(pageSize);
        for (var i = start; i < all.Count; i++)
        {
            var name = all[i];
            if (search.Length > 0 && !name.Contains(search, StringComparison.OrdinalIgnoreCase)) continue;
            if (!visible(name)) continue;
            if (page.Count == pageSize) return (page, true);
            page.Add(name);
        }
        return (page, false);
    }

    /// <summary>A page of a base repository's tags with their digests and push times.</summary>
    public async Task<(IReadOnlyList<(string Tag, string? Digest, DateTimeOffset? PushedAt)> Page, bool More)> TagPageAsync(RepositoryName repository, string? after,
        int pageSize, CancellationToken cancellationToken)
    {
        var all = await tags.ListAsync(repository, cancellationToken);
        var rows = new List<(string, string?, DateTimeOffset?)>();
        foreach (var tag in all.Where(t => after is null || string.CompareOrdinal(t, after) > 0).Take(pageSize))
            rows.Add((tag, (await tags.ResolveAsync(repository, tag, cancellationToken))?.ToString(), await tags.PushedAtAsync(repository, tag, cancellationToken)));
        return (rows, all.Count(t => after is null || string.CompareOrdinal(t, after) > 0) > pageSize);
    }

    /// <summary>The base tag "repository:tag" points at now, or null.</summary>
    public async Task<string?> BaseDigestAsync(string repository, string tag, CancellationToken cancellationToken) =>
        RepositoryName.TryParse(repository, out var name) && Tag.IsValid(tag) ? (await tags.ResolveAsync(name, tag, cancellationToken))?.ToString() : null;

    /// <summary>"name:tag", "name@digest" or "name" (":latest"), as container tools write references.</summary>
    public static (string Name, string Reference) SplitReference(string typed)
    {
        var at = typed.IndexOf('@');
        if (at > 0) return (typed[..at], typed[(at + 1)..]);
        var colon = typed.LastIndexOf(':');
        return colon > typed.LastIndexOf('/') && colon > 0 ? (typed[..colon], typed[(colon + 1)..]) : (typed, "latest");
    }

    /// <summary>A request accepting every manifest type, as container tools send it (the upstream is asked with its Accept header).</summary>
    private static HttpRequest ManifestRequest()
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Accept = $"{MediaTypes.OciIndex}, {MediaTypes.OciManifest}, {MediaTypes.DockerManifestList}, {MediaTypes.DockerManifest}";
        return context.Request;
    }

    private static ManifestPart Part(JsonElement element)
    {
        string? Text(JsonElement e, string key) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        string? platform = null;
        if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object)
            platform = string.Join('/', new[] { Text(p, "os"), Text(p, "architecture"), Text(p, "variant") }.Where(s => !string.IsNullOrEmpty(s)));
        var size = element.ValueKind == JsonValueKind.Object && element.TryGetProperty("size", out var s) && s.TryGetInt64(out var n) ? n : 0;
        return new ManifestPart(Text(element, "mediaType") ?? "", Text(element, "digest") ?? "", size, platform, Text(element, "artifactType"));
    }

    private static void ReadStrings(JsonElement root, string key, Dictionary<string, string> into)
    {
        if (!root.TryGetProperty(key, out var element) || element.ValueKind != JsonValueKind.Object) return;
        foreach (var property in element.EnumerateObject())
            if (property.Value.ValueKind == JsonValueKind.String) into[property.Name] = property.Value.GetString()!;
    }
}
