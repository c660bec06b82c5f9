using ShadowRegistry.Domain;

namespace ShadowRegistry.Tests.Unit;

public sealed class GrammarTests
{
    [Theory]
    [InlineData("alpine")]
    [InlineData("library/alpine")]
    [InlineData("docker.io/library/alpine")]
    [InlineData("a/b/c/d")]
    [InlineData("my-org/my__app")]
    [InlineData("a.b_c--d/e")]
    public void ValidRepositoryNames(string value) => Assert.True(RepositoryName.TryParse(value, out _));

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a/../b")]
    [InlineData("a/./b")]
    [InlineData("/a")]
    [InlineData("a/")]
    [InlineData("a//b")]
    [InlineData("A")]
    [InlineData("a/.b")]
    [InlineData("a_/b")]
    [InlineData("a___b")]
    [InlineData("-a")]
    [InlineData("a\\b")]
    [InlineData("a\0b")]
    [InlineData("a:b")]
    [InlineData("a/_manifests")]
    public void InvalidRepositoryNames(string value) => Assert.False(RepositoryName.TryParse(value, out _));

    [Fact]
    public void RepositoryNameLengthIsBounded()
    {
        Assert.True(RepositoryName.TryParse(new string('a', 255), out _));
        Assert.False(RepositoryName.TryParse(new string('a', 256), out _));
    }

    [Theory]
    [InlineData("latest", true)]
    [InlineData("v1.2.3-rc_1", true)]
    [InlineData("_private", true)]
    [InlineData(".hidden", false)]
    [InlineData("-dash", false)]
    [InlineData("a/b", false)]
    [InlineData("a:b", false)]
    [InlineData("", false)]
    [InlineData("..", false)]
    public void TagGrammar(string value, bool valid) => Assert.Equal(valid, Tag.IsValid(value));

    [Fact]
    public void TagLengthIsBounded()
    {
        Assert.True(Tag.IsValid(new string('a', 128)));
        Assert.False(Tag.IsValid(new string('a', 129)));
    }

    [Fact]
    public void DigestParsesSha256AndSha512Only()
    {
        Assert.True(Digest.TryParse("sha256:" + new string('a', 64), out var sha256));
        Assert.Equal("sha256", sha256.Algorithm);
        Assert.True(Digest.TryParse("sha512:" + new string('b', 128), out _));
        Assert.False(Digest.TryParse("sha256:" + new string('A', 64), out _));
        Assert.False(Digest.TryParse("sha256:" + new string('a', 63), out _));
        Assert.False(Digest.TryParse("sha512:" + new string('a', 64), out _));
        Assert.False(Digest.TryParse("md5:" + new string('a', 32), out _));
        Assert.False(Digest.TryParse("sha256:../../etc/passwd", out _));
        Assert.False(Digest.TryParse(null, out _));
    }

    [Fact]
    public void DigestComputeMatchesKnownValue()
    {
        Assert.Equal("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", Digest.Compute(Digest.Sha256, "hello"u8).ToString());
    }
}
