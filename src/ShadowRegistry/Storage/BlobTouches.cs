using System.Globalization;
using System.Text;
using Microsoft.Extensions.Options;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>What a blob's use record says when a request uses the blob.</summary>
public enum BlobUse
{
    /// <summary>The blob is there and its use is recorded: no collection can delete it within the grace period.</summary>
    Present,

    /// <summary>No such blob in the local store (it may be an upstream's).</summary>
    Absent,

    /// <summary>A collection is deleting it: treat it as missing.</summary>
    Deleting,
}

/// <summary>
/// One small object per blob (<see cref="RegistryPaths.BlobTouch"/>) saying when it was last used, or that a garbage
/// collection has claimed it for deletion. It is the one place where pushes and collections meet, and it is changed
/// only through the driver's conditional writes, so the outcome is the same with one process or many sharing the
/// store: a use that lands first makes the collection's claim fail (its version moved), a claim that lands first makes
/// the use see "deleting" and treat the blob as missing (docs/gc.md).
/// </summary>
public sealed class BlobTouches(IStorageDriver driver, IOptions<RegistryOptions> options, TimeProvider time)
{
    private const string Used = "used";
    private const string Deleting = "deleting";

    /// <summary>How often a writer polls while a collection deletes the blob it wants to write, and how many times.</summary>
    private static readonly TimeSpan WaitStep = TimeSpan.FromMilliseconds(50);
    private const int MaxWaits = 600;

    /// <summary>What a use record holds: when, and whether it is a collection's claim.</summary>
    public sealed record Stamp(DateTimeOffset At, bool IsClaim, StorageVersion Version);

    /// <summary>A collection's claim on a blob, to delete it.</summary>
    public sealed record Claim(Digest Digest, StorageVersion Version, DateTimeOffset At);

    private GcOptions Gc => options.Value.Gc;

    /// <summary>A claim older than this is a collection that died or stalled: a writer may take the blob back.</summary>
    public TimeSpan StaleClaim => TimeSpan.FromMinutes(10);

    /// <summary>Records a use of a blob already stored (HEAD, mount, a manifest push's check).</summary>
    public async Task<BlobUse> TouchAsync(Digest digest, CancellationToken cancellationToken)
    {
        var path = RegistryPaths.BlobTouch(digest);
        while (true)
        {
            var current = await ReadAsync(digest, cancellationToken);
            var now = time.GetUtcNow();
            // A stale claim is a collection that died or stalled; it never deletes past half that age (HoldsAsync).
            if (current is { IsClaim: true } && now - current.At < StaleClaim) return BlobUse.Deleting;
            if (current is { IsClaim: false } && now - current.At < Gc.TouchResolution) return BlobUse.Present;
            // Never a record for a blob that is not here: it would outlive it.
            if (current is null or { IsClaim: true } && !await driver.FileExistsAsync(RegistryPaths.Blob(digest), cancellationToken)) return BlobUse.Absent;
            if (await WriteAsync(path, current, Used, now, cancellationToken)) return BlobUse.Present;
        }
    }

    /// <summary>
    /// Before a blob is written (an upload published, a manifest's bytes stored): records the use, first waiting while
    /// a collection deletes the blob (it has claimed it; the bytes written now would be deleted with it). Once the
    /// collection has deleted the bytes, or its claim is stale, the claim is taken over.
    /// </summary>
    public async Task BeforeWriteAsync(Digest digest, CancellationToken cancellationToken)
    {
        var path = RegistryPaths.BlobTouch(digest);
        for (var waits = 0; ; )
        {
            var current = await ReadAsync(digest, cancellationToken);
            var now = time.GetUtcNow();
            if (current is { IsClaim: true } claim && now - claim.At < StaleClaim
                && await driver.FileExistsAsync(RegistryPaths.Blob(digest), cancellationToken))
            {
                if (++waits > MaxWaits) throw new BlobBeingCollectedException(digest);
                await Task.Delay(WaitStep, cancellationToken);
                continue;
            }
            if (current is { IsClaim: false } && now - current.At < Gc.TouchResolution) return;
            if (await WriteAsync(path, current, Used, now, cancellationToken)) return;
        }
    }

    /// <summary>The blob's use record, or null when it has none (a blob stored before collection existed, or never used since).</summary>
    public async Task<Stamp?> ReadAsync(Digest digest, CancellationToken cancellationToken)
    {
        var stored = await driver.GetVersionedAsync(RegistryPaths.BlobTouch(digest), cancellationToken);
        if (stored is null) return null;
        var text = Encoding.ASCII.GetString(stored.Content).Split(' ');
        // Unreadable: as if used at the beginning of time, so any write replaces it and a collection may claim it.
        return text.Length >= 2 && DateTimeOffset.TryParseExact(text[1], "O", CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at)
            ? new Stamp(at, text[0] == Deleting, stored.Version)
            : new Stamp(DateTimeOffset.MinValue, false, stored.Version);
    }

    /// <summary>
    /// Claims the blob for deletion if its record is still <paramref name="seen"/> (null: it has none); null when a use
    /// or another collection got there first.
    /// </summary>
    public async Task<Claim?> TryClaimAsync(Digest digest, Stamp? seen, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var content = Format(Deleting, now);
        var path = RegistryPaths.BlobTouch(digest);
        var claimed = seen is null
            ? await driver.PutIfAbsentAsync(path, content, cancellationToken)
            : await driver.PutIfVersionMatchesAsync(path, content, seen.Version, cancellationToken);
        if (!claimed) return null;
        // The version is the store's (an ETag is not a hash we could compute): read it back. Already replaced means
        // already taken over: no claim.
        var stored = await driver.GetVersionedAsync(path, cancellationToken);
        return stored is not null && stored.Content.AsSpan().SequenceEqual(content) ? new Claim(digest, stored.Version, now) : null;
    }

    /// <summary>Whether the claim still stands (nobody took it over as stale); asked right before the bytes go.</summary>
    public async Task<bool> HoldsAsync(Claim claim, CancellationToken cancellationToken) =>
        await ReadAsync(claim.Digest, cancellationToken) is { IsClaim: true } current && current.At == claim.At
        && time.GetUtcNow() - claim.At < StaleClaim / 2;

    /// <summary>Ends a claim: with the blob deleted the record goes too; a claim given up becomes a fresh use.</summary>
    public async Task ReleaseAsync(Claim claim, bool deleted, CancellationToken cancellationToken)
    {
        var path = RegistryPaths.BlobTouch(claim.Digest);
        if (deleted) await driver.DeleteIfVersionMatchesAsync(path, claim.Version, cancellationToken);
        else await driver.PutIfVersionMatchesAsync(path, Format(Used, time.GetUtcNow()), claim.Version, cancellationToken);
    }

    private async Task<bool> WriteAsync(string path, Stamp? current, string kind, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var content = Format(kind, now);
        return current is null
            ? await driver.PutIfAbsentAsync(path, content, cancellationToken)
            : await driver.PutIfVersionMatchesAsync(path, content, current.Version, cancellationToken);
    }

    /// <summary>"used|deleting &lt;time&gt; &lt;nonce&gt;": the nonce makes every write a new version, so no write can be mistaken for an earlier one.</summary>
    private static byte[] Format(string kind, DateTimeOffset at) =>
        Encoding.ASCII.GetBytes($"{kind} {at.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)} {Guid.NewGuid():N}");
}
