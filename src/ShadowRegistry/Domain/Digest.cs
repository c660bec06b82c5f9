using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace ShadowRegistry.Domain;

/// <summary>A content digest (<c>algorithm:hex</c>) of one of the algorithms this registry can verify.</summary>
public readonly partial record struct Digest(string Algorithm, string Hex)
{
    public const string Sha256 = "sha256";
    public const string Sha512 = "sha512";

    public override string ToString() => $"{Algorithm}:{Hex}";

    /// <summary>Parses a digest; only sha256 and sha512 with lower-case hex are accepted, so a digest is always safe to use as a file name.</summary>
    public static bool TryParse(string? value, out Digest digest)
    {
        digest = default;
        if (value is null) return false;
        var match = DigestPattern().Match(value);
        if (!match.Success) return false;
        var algorithm = match.Groups[1].Value;
        var hex = match.Groups[2].Value;
        var expectedLength = algorithm switch { Sha256 => 64, Sha512 => 128, _ => -1 };
        if (hex.Length != expectedLength) return false;
        digest = new Digest(algorithm, hex);
        return true;
    }

    public static Digest Parse(string value) =>
        TryParse(value, out var digest) ? digest : throw new FormatException($"invalid digest '{value}'");

    public IncrementalHash CreateHasher() => CreateHasher(Algorithm);

    public static IncrementalHash CreateHasher(string algorithm) => algorithm switch
    {
        Sha256 => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
        Sha512 => IncrementalHash.CreateHash(HashAlgorithmName.SHA512),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unsupported digest algorithm"),
    };

    public static Digest FromHash(string algorithm, byte[] hash) => new(algorithm, Convert.ToHexStringLower(hash));

    public static Digest Compute(string algorithm, ReadOnlySpan<byte> content)
    {
        using var hasher = CreateHasher(algorithm);
        hasher.AppendData(content);
        return FromHash(algorithm, hasher.GetHashAndReset());
    }

    [GeneratedRegex("^(sha256|sha512):([a-f0-9]+)\\z", RegexOptions.CultureInvariant)]
    private static partial Regex DigestPattern();
}
