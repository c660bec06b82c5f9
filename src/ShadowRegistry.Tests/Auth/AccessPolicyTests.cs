using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;

namespace ShadowRegistry.Tests.Auth;

public sealed class AccessPolicyTests
{
    private static readonly RegistryUser Reader = User("reader", "read");
    private static readonly RegistryUser Writer = User("gate", "write");
    private static readonly RegistryUser TeamWriter = User("team", "write", "team-a/**", "tools");

    private static RegistryUser User(string name, string role, params string[] patterns) =>
        RegistryUser.From(new AuthUser { Name = name, PasswordHash = "unused", Role = role, Repositories = [.. patterns] });

    private static AccessPolicy Policy(bool anonymousPull) => new(Options.Create(new AuthOptions { AnonymousPull = anonymousPull }));

    private static IReadOnlyList<AccessScope> Scopes(params string[] scopes) => AccessScope.ParseAll(scopes);

    [Theory]
    [InlineData("repository:team/app:pull,push", "repository", "team/app", "pull,push")]
    [InlineData("repository:app:pull", "repository", "app", "pull")]
    [InlineData("repository(plugin):team/app:pull", "repository", "team/app", "pull")]
    [InlineData("repository:localhost:5000/app:pull", "repository", "localhost:5000/app", "pull")]
    [InlineData("registry:catalog:*", "registry", "catalog", "*")]
    [InlineData("repository:app:pull, push,pull", "repository", "app", "pull,push")]
    public void ScopesParse(string text, string type, string name, string actions)
    {
        Assert.True(AccessScope.TryParse(text, out var scope));
        Assert.Equal(type, scope.Type);
        Assert.Equal(name, scope.Name);
        Assert.Equal(actions, string.Join(',', scope.Actions));
    }

    [Theory]
    [InlineData("")]
    [InlineData("repository")]
    [InlineData("repository:app")]
    [InlineData("repository::pull")]
    [InlineData("repository:app:")]
    [InlineData(":app:pull")]
    public void MalformedScopesDoNotParse(string text) => Assert.False(AccessScope.TryParse(text, out _));

    [Fact]
    public void SpaceSeparatedAndRepeatedScopesMerge()
    {
        var scopes = Scopes("repository:a:pull repository:b:pull", "repository:a:push", "garbage");
        Assert.Equal(["repository:a:pull,push", "repository:b:pull"], scopes.Select(s => s.ToString()));
    }

    [Theory]
    [InlineData("team-a/**", "team-a/app", true)]
    [InlineData("team-a/**", "team-a/x/y/z", true)]
    [InlineData("team-a/**", "team-a", false)]
    [InlineData("team-a/**", "team-ab/app", false)]
    [InlineData("base/*", "base/alpine", true)]
    [InlineData("base/*", "base/alpine/extra", false)]
    [InlineData("tools", "tools", true)]
    [InlineData("tools", "tools2", false)]
    [InlineData("*-cache", "ci-cache", true)]
    [InlineData("a.b", "axb", false)]
    [InlineData("**", "anything/at/all", true)]
    public void PatternsMatchWholeNames(string pattern, string name, bool matches)
    {
        Assert.True(RepositoryPattern.TryParse(pattern, out var parsed));
        Assert.Equal(matches, parsed.Matches(name));
    }

    [Theory]
    [InlineData("Team/App")]
    [InlineData("team a")]
    [InlineData("team/[ab]")]
    [InlineData("")]
    public void InvalidPatternsAreRejected(string pattern) => Assert.False(RepositoryPattern.TryParse(pattern, out _));

    [Fact]
    public void WriterGetsPullPushAndDeleteReaderOnlyPull()
    {
        var policy = Policy(anonymousPull: false);
        var requested = Scopes("repository:brand/new:pull,push,delete");
        Assert.Equal("repository:brand/new:pull,push,delete", Assert.Single(policy.Grant(Writer, requested)).ToString());
        Assert.Equal("repository:brand/new:pull", Assert.Single(policy.Grant(Reader, requested)).ToString());
    }

    [Fact]
    public void AnonymousGetsPullOnlyWhenAnonymousPullIsOn()
    {
        var requested = Scopes("repository:app:pull,push", "registry:catalog:*");
        Assert.Equal(["repository:app:pull", "registry:catalog:*"], Policy(anonymousPull: true).Grant(null, requested).Select(s => s.ToString()));
        Assert.Empty(Policy(anonymousPull: false).Grant(null, requested));
    }

    [Fact]
    public void PatternsLimitTheRoleAndTheCatalog()
    {
        var policy = Policy(anonymousPull: false);
        Assert.Equal(["repository:team-a/app:pull,push", "repository:tools:pull,push"],
            policy.Grant(TeamWriter, Scopes("repository:team-a/app:pull,push", "repository:team-b/app:pull,push", "repository:tools:pull,push")).Select(s => s.ToString()));
        Assert.Empty(policy.Grant(TeamWriter, Scopes("registry:catalog:*")));
        Assert.Single(policy.Grant(Reader, Scopes("registry:catalog:*")));
    }

    [Fact]
    public void OpenModeLetsRestrictedUsersPullEverythingButPushOnlyTheirs()
    {
        var policy = Policy(anonymousPull: true);
        Assert.Equal("repository:team-b/app:pull", Assert.Single(policy.Grant(TeamWriter, Scopes("repository:team-b/app:pull,push"))).ToString());
    }

    [Fact]
    public void StarIsExpandedToTheAllowedActions()
    {
        var policy = Policy(anonymousPull: false);
        Assert.Equal("repository:app:pull,push,delete", Assert.Single(policy.Grant(Writer, Scopes("repository:app:*"))).ToString());
        Assert.Equal("repository:app:pull", Assert.Single(policy.Grant(Reader, Scopes("repository:app:*"))).ToString());
    }

    [Fact]
    public void InvalidNamesUnknownTypesAndUnknownActionsAreNotGranted()
    {
        var policy = Policy(anonymousPull: true);
        Assert.Empty(policy.Grant(Writer, Scopes("repository:Bad/Name:pull", "repository:../etc:pull", "other:thing:pull", "repository:app:admin", "registry:other:*")));
    }
}
