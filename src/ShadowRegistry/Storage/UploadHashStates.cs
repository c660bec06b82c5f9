using System.Security.Cryptography;
using Microsoft.Extensions.Caching.Memory;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// Running sha256 of each live upload, so finishing a chunked upload need not read the whole file again. Only a
/// hint: a state is used only when it covers exactly the bytes on disk; otherwise the file is re-hashed. Entries
/// expire so abandoned uploads do not hold memory.
/// </summary>
public sealed class UploadHashStates : IDisposable
{
    private readonly MemoryCache cache = new(new MemoryCacheOptions { SizeLimit = 100_000 });

    public sealed class State(IncrementalHash hasher, long offset)
    {
        public IncrementalHash Hasher { get; } = hasher;
        public long Offset { get; set; } = offset;
    }

    /// <summary>Takes the state for an upload whose file holds <paramref name="offset"/> bytes, or null.</summary>
    public State? Take(string uploadId, long offset)
    {
        if (!cache.TryGetValue(uploadId, out State? state) || state is null) return offset == 0 ? New() : null;
        cache.Remove(uploadId);
        if (state.Offset == offset) return state;
        state.Hasher.Dispose();
        return null;
    }

    public void Put(string uploadId, State state) =>
        cache.Set(uploadId, state, new MemoryCacheEntryOptions
        {
            Size = 1,
            SlidingExpiration = TimeSpan.FromMinutes(30),
            PostEvictionCallbacks = { new PostEvictionCallbackRegistration { EvictionCallback = OnEvicted } },
        });

    public void Forget(string uploadId)
    {
        if (!cache.TryGetValue(uploadId, out State? state)) return;
        cache.Remove(uploadId);
        state?.Hasher.Dispose();
    }

    private static void OnEvicted(object key, object? value, EvictionReason reason, object? _)
    {
        // Replaced entries are the same object put back; only dispose what truly leaves the cache.
        if (reason is not EvictionReason.Replaced and not EvictionReason.Removed && value is State state) state.Hasher.Dispose();
    }

    private static State New() => new(Digest.CreateHasher(Digest.Sha256), 0);

    public void Dispose() => cache.Dispose();
}
