using System.Text;
using System.Text.RegularExpressions;

namespace ShadowRegistry.Auth;

/// <summary>
/// A repository name pattern from a user's configuration: <c>*</c> matches any run of characters within one path
/// component, <c>**</c> any run across components (so <c>team-a/**</c> is everything below team-a, not team-a
/// itself); every other character matches itself. Matching is ordinal and whole-name.
/// </summary>
public sealed class RepositoryPattern
{
    private readonly Regex regex;

    private RepositoryPattern(string text, Regex regex)
    {
        Text = text;
        this.regex = regex;
    }

    public string Text { get; }

    public bool Matches(string repository) => regex.IsMatch(repository);

    public override string ToString() => Text;

    public static bool TryParse(string? text, out RepositoryPattern pattern)
    {
        pattern = null!;
        if (string.IsNullOrEmpty(text) || text.Length > 512) return false;
        // The characters of repository names, plus the wildcard; wildcards expand to name characters only, so no
        // pattern can match a string that is not itself made of name characters.
        if (!text.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '-' or '/' or '*')) return false;
        var expression = new StringBuilder("^");
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] != '*')
            {
                expression.Append(Regex.Escape(text[i].ToString()));
            }
            else if (i + 1 < text.Length && text[i + 1] == '*')
            {
                expression.Append("[a-z0-9._/-]*");
                i++;
            }
            else
            {
                expression.Append("[a-z0-9._-]*");
            }
        }
        expression.Append(@"\z");
        pattern = new RepositoryPattern(text, new Regex(expression.ToString(), RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(1)));
        return true;
    }
}
