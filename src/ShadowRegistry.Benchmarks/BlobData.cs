using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ShadowRegistry.Benchmarks;

/// <summary>
/// A blob that is never held in memory: its bytes are a pure function of (seed, offset) — counter-based SplitMix64 —
/// so any range can be regenerated on demand, by several clients at once, and its digest computed once up front.
/// </summary>
public class BlobSpec
{
    private static readonly ConcurrentDictionary<(ulong, long), string> Digests = new();

    public BlobSpec(ulong seed, long length)
    {
        Seed = seed;
        Length = length;
    }

    public ulong Seed { get; }
    public long Length { get; }

    /// <summary>sha256:… of the whole blob; computed on first use by generating the bytes once (kept per process).</summary>
    public virtual string Digest => Digests.GetOrAdd((Seed, Length), static key => BlobData.ComputeDigest(key.Item1, key.Item2));

    /// <summary>A seed that is unrelated to the seeds of other (scenario, index) pairs.</summary>
    public static ulong SeedFor(int scenario, long index) => BlobData.Mix(0x5EED_0F_B10B_5EEDUL ^ (ulong)scenario, index);
}

public static class BlobData
{
    public const int BufferSize = 256 * 1024;

    public static ulong Mix(ulong seed, long index)
    {
        var z = seed + unchecked((ulong)(index + 1) * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Writes the bytes [offset, offset + destination.Length) of blob <paramref name="seed"/>.</summary>
    public static void Fill(ulong seed, long offset, Span<byte> destination)
    {
        Span<byte> word = stackalloc byte[8];
        var index = offset >> 3;
        var skip = (int)(offset & 7);
        var done = 0;
        if (skip != 0)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, Mix(seed, index++));
            var n = Math.Min(8 - skip, destination.Length);
            word.Slice(skip, n).CopyTo(destination);
            done = n;
        }
        var words = MemoryMarshal.Cast<byte, ulong>(destination[done..]);
        for (var k = 0; k < words.Length; k++)
        {
            var v = Mix(seed, index + k);
            words[k] = BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
        }
        index += words.Length;
        done += words.Length * 8;
        if (done < destination.Length)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, Mix(seed, index));
            word[..(destination.Length - done)].CopyTo(destination[done..]);
        }
    }

    public static string ComputeDigest(ulong seed, long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            for (long position = 0; position < length;)
            {
                var n = (int)Math.Min(BufferSize, length - position);
                Fill(seed, position, buffer.AsSpan(0, n));
                hash.AppendData(buffer, 0, n);
                position += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public static string DigestOf(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>Request body streaming a range of a generated blob, with a known Content-Length.</summary>
public sealed class GeneratedContent : HttpContent
{
    private readonly ulong seed;
    private readonly long offset;
    private readonly long length;

    public GeneratedContent(ulong seed, long offset, long length)
    {
        this.seed = seed;
        this.offset = offset;
        this.length = length;
        Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BlobData.BufferSize);
        try
        {
            for (long position = 0; position < length;)
            {
                var n = (int)Math.Min(BlobData.BufferSize, length - position);
                BlobData.Fill(seed, offset + position, buffer.AsSpan(0, n));
                await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                position += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = this.length;
        return true;
    }
}
