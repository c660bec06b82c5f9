using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ShadowRegistry.Auth;

/// <summary>
/// Password hashes in a self-describing format, <c>pbkdf2-sha256:ITERATIONS:SALT:HASH</c> (salt and hash in
/// unpadded base64url): PBKDF2-HMAC-SHA256 from the framework, a 16-byte random salt, a 32-byte derived key.
/// The format has no '$', so it survives shell double quotes and environment variables intact.
/// </summary>
public static class PasswordHash
{
    public const string Scheme = "pbkdf2-sha256";

    /// <summary>OWASP's current recommendation for PBKDF2-HMAC-SHA256.</summary>
    public const int DefaultIterations = 600_000;

    public const int MinIterations = 1_000;
    public const int MaxIterations = 10_000_000;

    private const int SaltBytes = 16;
    private const int HashBytes = 32;

    public static string Hash(string password, int iterations = DefaultIterations)
    {
        if (iterations is < MinIterations or > MaxIterations)
            throw new ArgumentOutOfRangeException(nameof(iterations), $"iterations must be between {MinIterations} and {MaxIterations}");
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Derive(password, salt, iterations, HashBytes);
        return string.Join(':', Scheme, iterations.ToString(CultureInfo.InvariantCulture), Base64Url(salt), Base64Url(hash));
    }

    /// <summary>Checks a password against a hash, comparing in constant time. False for a malformed hash.</summary>
    public static bool Verify(string password, string encoded)
    {
        if (!TryParse(encoded, out var parsed)) return false;
        var actual = Derive(password, parsed.Salt, parsed.Iterations, parsed.Hash.Length);
        return CryptographicOperations.FixedTimeEquals(actual, parsed.Hash);
    }

    public static bool IsWellFormed(string? encoded) => TryParse(encoded, out _);

    /// <summary>The iteration count a hash was made with, null for a malformed hash.</summary>
    public static int? IterationsOf(string? encoded) => TryParse(encoded, out var parsed) ? parsed.Iterations : null;

    private static byte[] Derive(string password, byte[] salt, int iterations, int length) =>
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, length);

    private static bool TryParse(string? encoded, [NotNullWhen(true)] out ParsedHash? parsed)
    {
        parsed = null;
        var parts = encoded?.Split(':');
        if (parts is not { Length: 4 } || parts[0] != Scheme) return false;
        if (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var iterations)
            || iterations is < MinIterations or > MaxIterations) return false;
        if (!TryBase64Url(parts[2], out var salt) || salt.Length < 8) return false;
        if (!TryBase64Url(parts[3], out var hash) || hash.Length < 16) return false;
        parsed = new ParsedHash(iterations, salt, hash);
        return true;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool TryBase64Url(string text, out byte[] bytes)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", _ => "" };
        bytes = new byte[padded.Length];
        if (!Convert.TryFromBase64String(padded, bytes, out var written)) return false;
        bytes = bytes[..written];
        return true;
    }

    private sealed record ParsedHash(int Iterations, byte[] Salt, byte[] Hash);
}
