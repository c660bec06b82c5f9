using System.Text.RegularExpressions;

namespace ShadowRegistry.Domain;

/// <summary>
/// A repository name per the OCI distribution grammar. The grammar allows no empty component, no leading
/// separator and no "." or ".." component, so a valid name is always a safe relative path below the storage root.
/// </summary>
public sealed partial record RepositoryName
{
    public const int MaxLength = 255;

    private RepositoryName(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    public static bool TryParse(string? value, out RepositoryName name)
    {
        name = null!;
        if (string.IsNullOrEmpty(value) || value.Length > MaxLength || !NamePattern().IsMatch(value)) return false;
        name = new RepositoryName(value);
        return true;
    }

    [GeneratedRegex(@"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}

public static partial class Tag
{
    public static bool IsValid(string? value) => value is not null && TagPattern().IsMatch(value);

    [GeneratedRegex("^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\\z", RegexOptions.CultureInvariant)]
    private static partial Regex TagPattern();
}
