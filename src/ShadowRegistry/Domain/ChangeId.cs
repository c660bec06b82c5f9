using System.Text.RegularExpressions;

namespace ShadowRegistry.Domain;

/// <summary>
/// The id of a speculative change: one OCI path component (so it can stand in a URL path and a host name label), at
/// most 64 characters.
/// </summary>
public sealed partial record ChangeId
{
    public const int MaxLength = 64;

    private ChangeId(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    public static bool TryParse(string? value, out ChangeId id)
    {
        id = null!;
        if (string.IsNullOrEmpty(value) || value.Length > MaxLength || !IdPattern().IsMatch(value)) return false;
        id = new ChangeId(value);
        return true;
    }

    public static ChangeId Parse(string? value) =>
        TryParse(value, out var id) ? id : throw new ChangeInvalidException($"invalid change id '{value}': one lower-case OCI path component ([a-z0-9]+([._-][a-z0-9]+)*), at most {MaxLength} characters");

    [GeneratedRegex(@"^[a-z0-9]+([._-][a-z0-9]+)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();
}

/// <summary>
/// Where a change's own tags, manifest records and blob links live: its id and the generation of this incarnation
/// (a change deleted and created again under the same id starts from an empty overlay, never from leftovers the
/// background removal has not reached yet).
/// </summary>
public sealed record Overlay(ChangeId Change, string Generation)
{
    public override string ToString() => $"change/{Change}";
}
