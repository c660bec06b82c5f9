using System.Text.RegularExpressions;
using Semver;
using ShadowRegistry.Domain;
using ShadowRegistry.Manifests;

namespace ShadowRegistry.Sync;

public sealed record SyncOptions
{
    /// <summary>Tags only on the destination stay (publishing into a shared repository); by default they are deleted (mirroring).</summary>
    public bool KeepExtra { get; init; }

    public bool DryRun { get; init; }

    /// <summary>Only tags matching this pattern take part, on both sides.</summary>
    public Regex? TagFilter { get; init; }

    /// <summary>
    /// Only tags that are versions (<c>1</c>, <c>1.2</c>, <c>v1.2.3</c>, <c>1.2.3-rc.1</c>) inside this npm-style range
    /// take part, on both sides; other tags are left out. With <see cref="TagFilter"/> too, a tag must pass both.
    /// </summary>
    public SemVersionRange? VersionRange { get; init; }

    /// <summary>Put before each destination repository name (after <see cref="StripPrefix"/> is taken off).</summary>
    public string? DestinationPrefix { get; init; }

    /// <summary>Taken off the front of each source repository name for the destination.</summary>
    public string? StripPrefix { get; init; }

    /// <summary>How tags are read as versions for <see cref="VersionRange"/>: a leading v and a missing minor or patch are allowed.</summary>
    public const SemVersionStyles TagVersionStyles = SemVersionStyles.AllowV | SemVersionStyles.OptionalMinorPatch;

    /// <summary>Whether a tag takes part: the one filter both the plan and the check apply, so they manage the same tags.</summary>
    public bool Includes(string tag) =>
        (TagFilter is null || TagFilter.IsMatch(tag))
        && (VersionRange is null || (SemVersion.TryParse(tag, TagVersionStyles, out var version) && VersionRange.Contains(version)));
}

/// <summary>What a sync or check found and did.</summary>
public sealed record SyncReport(IReadOnlyList<CheckResult> Checks, IReadOnlyList<string> Failures, int Writes)
{
    public bool InSync => Failures.Count == 0 && Checks.All(c => c.InSync);
}

/// <summary>
/// Makes the destination's (tag, digest) state equal to the source's and proves it with the same computation the
/// check uses. Content goes by digest in dependency order — blobs, child manifests, referrers, the manifest, then the
/// tag — so an interrupted copy never leaves a tag pointing at incomplete content. Per-tag failures are reported and
/// do not stop the other tags.
/// </summary>
public sealed class Syncer(OciRegistryClient source, RegistryReference from, OciRegistryClient destination, RegistryReference to,
    SyncOptions options, Action<string>? log = null, SyncProgress? progress = null)
{
    private readonly HashSet<(string, Digest)> copied = [];

    public async Task<SyncReport> CheckAsync(CancellationToken cancellationToken)
    {
        var checks = new List<CheckResult>();
        foreach (var (sourceRepository, destinationRepository) in await PairsAsync(cancellationToken))
            checks.Add(await CheckRepositoryAsync(sourceRepository, destinationRepository, cancellationToken));
        return new SyncReport(checks, [], 0);
    }

    public async Task<SyncReport> SyncAsync(CancellationToken cancellationToken)
    {
        var failures = new List<string>();
        var writesBefore = destination.Writes;
        foreach (var (sourceRepository, destinationRepository) in await PairsAsync(cancellationToken))
        {
            var (sourceTags, destinationTags) = (await TagsAsync(source, sourceRepository, cancellationToken), await TagsAsync(destination, destinationRepository, cancellationToken));
            var plan = SyncPlan.Compute(sourceTags, destinationTags, options.KeepExtra);
            if (!options.DryRun) progress?.Planned(plan.Count(step => step.Action != TagAction.KeepExtra));
            foreach (var step in plan)
            {
                log?.Invoke($"{(options.DryRun ? "would " : "")}{step.Action.ToString().ToLowerInvariant()} {destinationRepository}:{step.Tag}"
                    + (step.Source is { } s ? $" -> {s}" : "") + (step.Destination is { } d ? $" (was {d})" : ""));
                if (options.DryRun || step.Action == TagAction.KeepExtra) continue;
                try
                {
                    if (step.Action is TagAction.Copy or TagAction.Update)
                    {
                        var manifest = await CopyManifestAsync(sourceRepository, destinationRepository, step.Source!.Value, cancellationToken);
                        await destination.PutManifestAsync(destinationRepository, step.Tag, manifest, cancellationToken);
                    }
                    else
                    {
                        await DeleteTagAsync(destinationRepository, step.Tag, step.Destination!.Value, destinationTags, sourceTags, cancellationToken);
                    }
                }
                catch (Exception e) when (e is RegistryCallException or HttpRequestException or IOException or ManifestInvalidException)
                {
                    failures.Add($"{destinationRepository}:{step.Tag}: {e.Message}");
                    log?.Invoke($"failed {destinationRepository}:{step.Tag}: {e.Message}");
                }
                progress?.Done($"{destinationRepository}:{step.Tag}");
            }
        }
        // The check that decides success is the same computation, done afresh on both sides.
        var report = options.DryRun ? new SyncReport([], failures, 0) : await CheckAsync(cancellationToken);
        return new SyncReport(report.Checks, failures, destination.Writes - writesBefore);
    }

    private async Task<CheckResult> CheckRepositoryAsync(string sourceRepository, string destinationRepository, CancellationToken cancellationToken)
    {
        var sourceTags = await TagsAsync(source, sourceRepository, cancellationToken);
        var destinationTags = await TagsAsync(destination, destinationRepository, cancellationToken);
        var differences = SyncPlan.Compute(sourceTags, destinationTags, options.KeepExtra);
        // With kept extras the fingerprints differ by design; compare the source's tags only on the destination then.
        var compared = options.KeepExtra ? destinationTags.Where(p => sourceTags.ContainsKey(p.Key)).ToDictionary() : destinationTags;
        return new CheckResult(destinationRepository, SyncPlan.Fingerprint(sourceTags), SyncPlan.Fingerprint(compared), differences);
    }

    /// <summary>Source repository → destination repository, for a single repository or every one under a prefix.</summary>
    private async Task<IReadOnlyList<(string Source, string Destination)>> PairsAsync(CancellationToken cancellationToken)
    {
        if (!from.IsPrefix) return [(from.Repository, to.IsPrefix ? Rename(from.Repository) : to.Repository)];
        var repositories = await source.ListRepositoriesAsync(from.Repository, cancellationToken);
        return repositories.Order(StringComparer.Ordinal).Select(r => (r, Rename(r))).ToList();
    }

    private string Rename(string repository)
    {
        var name = repository;
        if (options.StripPrefix is { Length: > 0 } strip && name.StartsWith(strip.TrimEnd('/') + "/", StringComparison.Ordinal))
            name = name[(strip.TrimEnd('/').Length + 1)..];
        var prefix = options.DestinationPrefix ?? (to.IsPrefix && to.Repository.Length > 0 ? to.Repository : null);
        return prefix is { Length: > 0 } ? $"{prefix.TrimEnd('/')}/{name}" : name;
    }

    private async Task<Dictionary<string, Digest>> TagsAsync(OciRegistryClient client, string repository, CancellationToken cancellationToken)
    {
        // A tag named on either side limits both sides to it: "sync a:v1 b" must not see b's other tags as extra.
        var single = from.IsPrefix || to.IsPrefix ? null : from.Tag ?? to.Tag;
        var tags = single is not null ? [single] : await client.ListTagsAsync(repository, cancellationToken);
        var result = new Dictionary<string, Digest>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            // Referrers tag-schema indexes go with their subject (see CopyManifestAsync), not as tags of their own.
            if (!options.Includes(tag) || OciRegistryClient.IsReferrersTag(tag)) continue;
            if (await client.ResolveAsync(repository, tag, cancellationToken) is { } digest) result[tag] = digest;
        }
        return result;
    }

    /// <summary>Copies a manifest and everything it references by digest, without tagging it.</summary>
    public Task CopyContentAsync(string sourceRepository, string destinationRepository, Digest digest, CancellationToken cancellationToken) =>
        CopyManifestAsync(sourceRepository, destinationRepository, digest, cancellationToken);

    /// <summary>Copies a manifest by digest with everything it needs first; returns its bytes for the tag to be put.</summary>
    private async Task<RemoteManifest> CopyManifestAsync(string sourceRepository, string destinationRepository, Digest digest, CancellationToken cancellationToken,
        int depth = 0)
    {
        var manifest = await source.GetManifestAsync(sourceRepository, digest.ToString(), cancellationToken)
            ?? throw new RegistryCallException($"manifest {digest} vanished from {sourceRepository}");
        if (copied.Contains((destinationRepository, digest))) return manifest;
        if (depth > 8) throw new RegistryCallException($"manifest {digest} nests too deep");
        var parsed = ManifestParser.Parse(manifest.Content, manifest.MediaType);
        foreach (var (blob, size) in parsed.Blobs) await CopyBlobAsync(sourceRepository, destinationRepository, blob, size, cancellationToken);
        foreach (var (child, _) in parsed.Manifests)
        {
            var childManifest = await CopyManifestAsync(sourceRepository, destinationRepository, child, cancellationToken, depth + 1);
            if (await destination.ResolveAsync(destinationRepository, child.ToString(), cancellationToken) is null)
                await destination.PutManifestAsync(destinationRepository, child.ToString(), childManifest, cancellationToken);
        }
        if (await destination.ResolveAsync(destinationRepository, digest.ToString(), cancellationToken) is null)
            await destination.PutManifestAsync(destinationRepository, digest.ToString(), manifest, cancellationToken);
        // Signatures and SBOMs travel with what they describe. A destination without the referrers API finds them
        // through the referrers tag schema, which the pusher keeps: the index tagged <alg>-<hex> of the subject.
        var referrers = await source.ReferrersAsync(sourceRepository, digest, cancellationToken);
        foreach (var referrer in referrers)
        {
            if (await destination.ResolveAsync(destinationRepository, referrer.Digest.ToString(), cancellationToken) is not null) continue;
            await CopyManifestAsync(sourceRepository, destinationRepository, referrer.Digest, cancellationToken, depth + 1);
        }
        if (referrers.Count > 0 && !await destination.HasReferrersApiAsync(destinationRepository, digest, cancellationToken))
            await destination.AddToReferrersTagAsync(destinationRepository, digest, referrers, cancellationToken);
        copied.Add((destinationRepository, digest));
        return manifest;
    }

    private async Task CopyBlobAsync(string sourceRepository, string destinationRepository, Digest digest, long size, CancellationToken cancellationToken)
    {
        if (await destination.BlobSizeAsync(destinationRepository, digest, cancellationToken) == size) return;
        if (from.SameRegistryAs(to) && await destination.MountAsync(destinationRepository, digest, sourceRepository, cancellationToken)) return;
        await destination.CopyBlobAsync(source, sourceRepository, destinationRepository, digest, size, cancellationToken, progress is null ? null : progress.Sent);
    }

    /// <summary>
    /// Deletes a tag. Registries without tag deletion (CNCF distribution) delete by digest, which takes every tag on
    /// that manifest with it: those that must stay are put back at once.
    /// </summary>
    private async Task DeleteTagAsync(string repository, string tag, Digest digest, IReadOnlyDictionary<string, Digest> destinationTags,
        IReadOnlyDictionary<string, Digest> sourceTags, CancellationToken cancellationToken)
    {
        if (await destination.DeleteManifestAsync(repository, tag, cancellationToken)) return;
        // Deleting by digest removes the manifest itself: not when an index that stays there needs it as a platform.
        var staying = sourceTags.Values.Concat(options.KeepExtra ? destinationTags.Where(p => !sourceTags.ContainsKey(p.Key)).Select(p => p.Value) : [])
            .Where(d => d != digest).Distinct();
        foreach (var other in staying)
        {
            if (await destination.GetManifestAsync(repository, other.ToString(), cancellationToken) is not { } index || !MediaTypes.IsIndex(index.MediaType)) continue;
            if (ManifestParser.Parse(index.Content, index.MediaType).Manifests.Any(child => child.Digest == digest))
                throw new RegistryCallException($"the destination deletes no tags, and deleting {digest} by digest would break index {other}, which stays");
        }
        var manifest = await destination.GetManifestAsync(repository, digest.ToString(), cancellationToken);
        if (!await destination.DeleteManifestAsync(repository, digest.ToString(), cancellationToken))
            throw new RegistryCallException($"the destination deletes neither tags nor manifests (enable deletes there)");
        if (manifest is null) return;
        // Put back every tag that must stay on this digest: the source's tags on it (copies and updates ran before the
        // deletes, so some may point at it only since this sync began), and extras when they are kept.
        var restore = sourceTags.Where(p => p.Value == digest).Select(p => p.Key)
            .Concat(options.KeepExtra ? destinationTags.Where(p => p.Value == digest && !sourceTags.ContainsKey(p.Key)).Select(p => p.Key) : [])
            .Where(other => other != tag).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        foreach (var other in restore) await destination.PutManifestAsync(repository, other, manifest, cancellationToken);
    }
}
