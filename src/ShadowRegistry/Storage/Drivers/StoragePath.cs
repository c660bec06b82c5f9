using System.Text.RegularExpressions;

namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// Driver paths: "/" followed by components of letters, digits, '.', '_' and '-', separated by single slashes. A
/// component never starts with '.', which rules out "." and ".." (so no path can leave the driver's root) and leaves
/// dot-names to the drivers' own temporaries and lock files, which therefore never collide with data and are never
/// listed.
/// </summary>
public static partial class StoragePath
{
    public const string Root = "/";

    /// <summary>Throws <see cref="InvalidPathException"/> unless <paramref name="path"/> is valid; the root only when <paramref name="rootAllowed"/>.</summary>
    public static void Validate(string driverName, string path, bool rootAllowed = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path == Root)
        {
            if (!rootAllowed) throw new InvalidPathException(driverName, path, "the root cannot be written, moved or deleted");
            return;
        }
        if (!PathPattern().IsMatch(path))
            throw new InvalidPathException(driverName, path, "expected /component/..., components of [A-Za-z0-9._-] not starting with '.'");
    }

    public static bool IsValidComponent(ReadOnlySpan<char> name) => ComponentPattern().IsMatch(name);

    /// <summary>The parent of a valid non-root path ("/" for "/a").</summary>
    public static string Parent(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash == 0 ? Root : path[..slash];
    }

    /// <summary>The last component of a valid non-root path.</summary>
    public static string Name(string path) => path[(path.LastIndexOf('/') + 1)..];

    public static string Join(string directory, string name) => directory == Root ? Root + name : $"{directory}/{name}";

    [GeneratedRegex(@"^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+\z", RegexOptions.CultureInvariant)]
    private static partial Regex PathPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_-][A-Za-z0-9._-]*\z", RegexOptions.CultureInvariant)]
    private static partial Regex ComponentPattern();
}
