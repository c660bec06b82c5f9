using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Changes;

/// <summary>What a change is, as stored: one small object per change, replaced atomically on every update.</summary>
public sealed record ChangeRecord(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("generation")] string Generation,
    [property: JsonPropertyName("ahead")] IReadOnlyList<string> Ahead,
    [property: JsonPropertyName("labels")] IReadOnlyDictionary<string, string> Labels,
    [property: JsonPropertyName("createdAt")] DateTimeOffset CreatedAt,
    [property: JsonPropertyName("expiresAt")] DateTimeOffset ExpiresAt)
{
    /// <summary>SHA-256 (hex) of the change's own credential, when one was issued; the secret itself is never stored.</summary>
    [JsonPropertyName("credentialHash")]
    public string? CredentialHash { get; init; }

    public Overlay Overlay => new(ChangeId.Parse(Id), Generation);

    public bool IsExpired(DateTimeOffset now) => now >= ExpiresAt;
}

/// <summary>
/// Change records in the storage driver (<see cref="RegistryPaths.ChangeRecord"/>), read-modify-written only through
/// the driver's conditional operations, so two processes updating one change never lose each other's update. Reads
/// are cached for <see cref="Configuration.RegistryOptions.ChangeCacheDuration"/>: every request through a view reads its whole queue, and
/// this process's own updates replace the cached entry at once.
/// </summary>
public sealed class ChangeStore(IStorageDriver driver, IOptions<Configuration.RegistryOptions> options, TimeProvider time)
{
    private sealed record Cached(VersionedRecord? Value, DateTimeOffset ReadAt);

    public sealed record VersionedRecord(ChangeRecord Record, StorageVersion Version);

    private readonly ConcurrentDictionary<ChangeId, Cached> cache = new();
    private long writes;

    /// <summary>
    /// How many record writes and deletes this process has made. Whatever is derived from records read while this
    /// had some value (a view) is out of date once it has another: this process's own updates are seen at once.
    /// </summary>
    public long Writes => Interlocked.Read(ref writes);

    /// <summary>How long a record read from storage is used (<see cref="Configuration.RegistryOptions.ChangeCacheDuration"/>).</summary>
    public TimeSpan CacheDuration => options.Value.ChangeCacheDuration;

    /// <summary>The stored record (expired or not) and its version, or null when there is none.</summary>
    public async Task<VersionedRecord?> GetAsync(ChangeId id, CancellationToken cancellationToken, bool fresh = false) =>
        (await GetUntilAsync(id, cancellationToken, fresh)).Value;

    /// <summary>
    /// As <see cref="GetAsync"/>, and until when the answer may be used: the time it was read from storage plus the
    /// cache duration. Past that, another process's update may have been missed.
    /// </summary>
    /// <param name="fresh">Read storage even when a cached answer is still usable.</param>
    public ValueTask<(VersionedRecord? Value, DateTimeOffset FreshUntil)> GetUntilAsync(ChangeId id, CancellationToken cancellationToken,
        bool fresh = false) => GetUntilAsync(id, fresh ? TimeSpan.Zero : options.Value.ChangeCacheDuration, cancellationToken);

    /// <summary>As the other overload, with a cached answer used only while it is younger than <paramref name="maxAge"/> (at most the cache duration).</summary>
    public async ValueTask<(VersionedRecord? Value, DateTimeOffset FreshUntil)> GetUntilAsync(ChangeId id, TimeSpan maxAge,
        CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var duration = options.Value.ChangeCacheDuration;
        if (maxAge > duration) maxAge = duration;
        if (cache.TryGetValue(id, out var cached) && now - cached.ReadAt < maxAge) return (cached.Value, cached.ReadAt + duration);
        var stored = await driver.GetVersionedAsync(RegistryPaths.ChangeRecord(id), cancellationToken);
        var value = stored is null ? null : new VersionedRecord(Deserialize(stored.Content), stored.Version);
        cache[id] = new Cached(value, now);
        return (value, now + duration);
    }

    /// <summary>Writes a new record when <paramref name="expected"/> is null (none may exist), else replaces that version. False when someone else got there first.</summary>
    public async Task<bool> TryPutAsync(ChangeRecord record, StorageVersion? expected, CancellationToken cancellationToken)
    {
        var id = ChangeId.Parse(record.Id);
        var content = JsonSerializer.SerializeToUtf8Bytes(record, ChangeJson.Default.ChangeRecord);
        var path = RegistryPaths.ChangeRecord(id);
        var written = expected is null
            ? await driver.PutIfAbsentAsync(path, content, cancellationToken)
            : await driver.PutIfVersionMatchesAsync(path, content, expected, cancellationToken);
        cache.TryRemove(id, out _);
        Interlocked.Increment(ref writes); // after the removal: whoever sees the new count reads the record afresh
        return written;
    }

    /// <summary>Removes the record if it still has <paramref name="expected"/>; false when it changed or is gone.</summary>
    public async Task<bool> TryDeleteAsync(ChangeId id, StorageVersion expected, CancellationToken cancellationToken)
    {
        var deleted = await driver.DeleteIfVersionMatchesAsync(RegistryPaths.ChangeRecord(id), expected, cancellationToken);
        cache.TryRemove(id, out _);
        Interlocked.Increment(ref writes);
        return deleted;
    }

    /// <summary>Every change id with a folder in storage (live, expired, or deleted and not yet removed).</summary>
    public async Task<IReadOnlyList<ChangeId>> ListIdsAsync(CancellationToken cancellationToken)
    {
        var ids = new List<ChangeId>();
        foreach (var name in await driver.ListOrEmptyAsync(RegistryPaths.Changes, cancellationToken))
            if (ChangeId.TryParse(name, out var id)) ids.Add(id);
        return ids;
    }

    /// <summary>The overlay generations present in storage for the change, whether its record names them or not.</summary>
    public async Task<IReadOnlyList<string>> ListGenerationsAsync(ChangeId id, CancellationToken cancellationToken) =>
        (await driver.ListOrEmptyAsync(RegistryPaths.ChangeFolder(id), cancellationToken)).Where(name => name.StartsWith('g')).ToList();

    /// <summary>
    /// Removes one overlay generation. The change's folder itself stays (with its record, if any): removing it could
    /// race a create of the same id writing its record into it.
    /// </summary>
    public Task RemoveGenerationAsync(ChangeId id, string generation, CancellationToken cancellationToken) =>
        driver.TryDeleteAsync(RegistryPaths.OverlayRoot(new Overlay(id, generation)), cancellationToken);

    private static ChangeRecord Deserialize(byte[] content) =>
        JsonSerializer.Deserialize(content, ChangeJson.Default.ChangeRecord) ?? throw new InvalidDataException("empty change record");
}

/// <summary>Change records as JSON, by generated code rather than reflection (the Native AOT build has none).</summary>
[JsonSerializable(typeof(ChangeRecord))]
internal sealed partial class ChangeJson : JsonSerializerContext;
