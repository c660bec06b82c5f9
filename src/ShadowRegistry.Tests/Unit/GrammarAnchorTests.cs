using ShadowRegistry.Api;
using ShadowRegistry.Auth;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Tests.Unit;

/// <summary>
/// Every grammar must match the whole input. .NET's <c>$</c> also matches before a final "\n", which once let a tag
/// "evil\n" be stored; these cases fail against a pattern anchored with <c>$</c>.
/// </summary>
public sealed class GrammarAnchorTests
{
    // Trailing line breaks and NUL, and characters that look like valid ones (fullwidth a, Cyrillic a, Arabic-Indic digit).
    public static readonly TheoryData<string> Suffixes = new() { "\n", "\r", "\r\n", "\0", "\u00A0", "\uFF41", "\u0430", "\u0663" };

    [Theory]
    [MemberData(nameof(Suffixes))]
    public void RepositoryNamesRejectTrailingAndLookAlikeCharacters(string suffix)
    {
        Assert.True(RepositoryName.TryParse("team/app", out _));
        Assert.False(RepositoryName.TryParse("team/app" + suffix, out _));
        Assert.False(RepositoryName.TryParse(suffix + "team/app", out _));
        Assert.False(RepositoryName.TryParse("team" + suffix + "/app", out _));
    }

    [Theory]
    [MemberData(nameof(Suffixes))]
    public void TagsRejectTrailingAndLookAlikeCharacters(string suffix)
    {
        Assert.False(Tag.IsValid("evil" + suffix));
        Assert.False(Tag.IsValid(suffix + "evil"));
        Assert.False(Tag.IsValid(new string('a', 127) + suffix));
    }

    [Theory]
    [MemberData(nameof(Suffixes))]
    public void DigestsRejectTrailingAndLookAlikeCharacters(string suffix)
    {
        var valid = "sha256:" + new string('a', 64);
        Assert.True(Digest.TryParse(valid, out _));
        Assert.False(Digest.TryParse(valid + suffix, out _));
        Assert.False(Digest.TryParse("sha256:" + new string('a', 63) + suffix, out _));
        Assert.False(Digest.TryParse("sha256" + suffix + ":" + new string('a', 64), out _));
    }

    [Theory]
    [MemberData(nameof(Suffixes))]
    public void RoutesRejectTrailingCharacters(string suffix)
    {
        Assert.Equal(RouteKind.Tags, RouteMatch.Parse("/v2/team/app/tags/list")!.Kind);
        Assert.Null(RouteMatch.Parse("/v2/team/app/tags/list" + suffix));
        Assert.NotEqual(RouteKind.UploadStart, RouteMatch.Parse("/v2/team/app/blobs/uploads" + suffix)?.Kind);
        // A parameter may hold anything but a slash; the endpoint's own grammar then refuses it.
        var manifest = RouteMatch.Parse("/v2/team/app/manifests/latest" + suffix);
        Assert.False(manifest is not null && Tag.IsValid(manifest.Parameter));
    }

    [Theory]
    [MemberData(nameof(Suffixes))]
    public void RepositoryPatternsMatchWholeNamesOnly(string suffix)
    {
        Assert.True(RepositoryPattern.TryParse("tools", out var exact));
        Assert.True(exact.Matches("tools"));
        Assert.False(exact.Matches("tools" + suffix));
    }

    [Fact]
    public void WildcardPatternsDoNotMatchPastALineBreak()
    {
        Assert.True(RepositoryPattern.TryParse("team-a/*", out var pattern));
        Assert.True(pattern.Matches("team-a/app"));
        Assert.False(pattern.Matches("team-a/app\n"));
        Assert.False(RepositoryPattern.TryParse("team-a/**\n", out _));
    }

    [Fact]
    public void OverlongInputIsRejectedWithoutCatastrophicBacktracking()
    {
        var longName = string.Join('/', Enumerable.Repeat("a-b_c.d", 200));
        Assert.False(RepositoryName.TryParse(longName, out _));
        Assert.False(RepositoryName.TryParse(new string('a', 100_000) + "!", out _));
        Assert.False(Tag.IsValid(new string('a', 100_000)));
        Assert.False(Digest.TryParse("sha256:" + new string('a', 100_000), out _));
        Assert.Null(RouteMatch.Parse("/v2/" + new string('a', 100_000) + "/tags/list\n"));
    }
}
