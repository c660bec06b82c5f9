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

    /// <summary>
    /// The change overlay this name's content lives in, or null for the base namespace. The same name in an overlay
    /// is a different repository in storage; clients never name overlays directly, they read through a change's view.
    /// </summary>
    public Overlay? Overlay { get; private init; }

    /// <summary>This repository's counterpart in <paramref name="overlay"/>.</summary>
    public RepositoryName In(Overlay overlay) => this with { Overlay = overlay };

    /// <summary>This repository in the base namespace.</summary>
    public RepositoryName Base => Overlay is null ? this : this with { Overlay = null };

    public override string ToString() => Overlay is null ? Value : $"{Value} ({Overlay})";

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
