using System.Security.Cryptography;
using System.Text;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Sync;

/// <summary>What the sync does to one tag of the destination.</summary>
public enum TagAction
{
    /// <summary>Only on the source: copied.</summary>
    Copy,

    /// <summary>On both with different digests: the source's is pushed.</summary>
    Update,

    /// <summary>Only on the destination: deleted (unless extras are kept).</summary>
    Delete,

    /// <summary>Only on the destination and kept (--keep-extra).</summary>
    KeepExtra,
}

public sealed record PlannedTag(string Tag, TagAction Action, Digest? Source, Digest? Destination);

/// <summary>
/// The one computation behind both sync and check: the (tag, digest) pairs of each side. The plan is what makes them
/// equal; the check is a hash of each side's sorted pairs, equal exactly when the plan (without kept extras) is empty.
/// </summary>
public static class SyncPlan
{
    public static IReadOnlyList<PlannedTag> Compute(IReadOnlyDictionary<string, Digest> source, IReadOnlyDictionary<string, Digest> destination, bool keepExtra)
    {
        var plan = new List<PlannedTag>();
        foreach (var (tag, digest) in source.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!destination.TryGetValue(tag, out var there)) plan.Add(new PlannedTag(tag, TagAction.Copy, digest, null));
            else if (there != digest) plan.Add(new PlannedTag(tag, TagAction.Update, digest, there));
        }
        foreach (var (tag, digest) in destination.OrderBy(p => p.Key, StringComparer.Ordinal))
            if (!source.ContainsKey(tag)) plan.Add(new PlannedTag(tag, keepExtra ? TagAction.KeepExtra : TagAction.Delete, null, digest));
        return plan;
    }

    /// <summary>SHA-256 over the sorted "tag␟digest" lines: the state fingerprint the check compares.</summary>
    public static string Fingerprint(IReadOnlyDictionary<string, Digest> tags)
    {
        var text = new StringBuilder();
        foreach (var (tag, digest) in tags.OrderBy(p => p.Key, StringComparer.Ordinal)) text.Append(tag).Append('\u241F').Append(digest).Append('\n');
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}

/// <summary>The check of one repository pair: in sync exactly when both fingerprints are equal (extras allowed when kept).</summary>
public sealed record CheckResult(string Repository, string SourceFingerprint, string DestinationFingerprint, IReadOnlyList<PlannedTag> Differences)
{
    /// <summary>The fingerprints alone decide; <see cref="Differences"/> only says which tags make them differ.</summary>
    public bool InSync => SourceFingerprint == DestinationFingerprint;

    public IEnumerable<string> Describe() => Differences.Where(d => d.Action != TagAction.KeepExtra).Select(d => d.Action switch
    {
        TagAction.Copy => $"{Repository}:{d.Tag} missing on the destination (source {d.Source})",
        TagAction.Update => $"{Repository}:{d.Tag} mutated (source {d.Source}, destination {d.Destination})",
        _ => $"{Repository}:{d.Tag} extra on the destination ({d.Destination})",
    });
}
