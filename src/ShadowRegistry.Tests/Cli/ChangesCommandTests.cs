using System.Text;
using System.Text.Json.Nodes;
using ShadowRegistry.Cli;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;
using WireMock;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace ShadowRegistry.Tests.Cli;

/// <summary>
/// <c>ShadowRegistry changes ...</c> against a WireMock stand-in of the management API: each verb sends exactly the
/// request of docs/changes-api.md, and each answer maps to the documented exit code and output.
/// </summary>
public sealed class ChangesCommandTests : IDisposable
{
    private const string Description = """
        {"id":"c1","ahead":["b","a"],"skipped":[],"labels":{"project":"app"},"createdAt":"2026-12-02T01:00:00Z",
         "expiresAt":"2026-12-03T01:00:00Z","view":{"path":"/v2/changes/c1/","host":null},
         "tags":[{"repository":"docker.io/library/app","tag":"latest","digest":"sha256:aa","uniqueBytes":1234}]}
        """;

    private readonly FakeUpstream api = FakeUpstream.Start();
    private readonly Dictionary<string, string> environment = new();

    public ChangesCommandTests() => environment["SHADOWREGISTRY_URL"] = api.Url;

    public void Dispose() => api.Dispose();

    [Fact]
    public async Task CreateSendsOnlyTheGivenFieldsAndPrintsTheDescription()
    {
        Answer("PUT", "/api/v1/changes/c1", 201, Description);
        var run = await RunAsync("create", "c1", "--ahead", "b,a", "--ahead", "x", "--ttl", "1h30m", "--label", "project=app", "--label=pipeline=gate=check");

        Assert.Equal(0, run.Code);
        var request = Single("PUT", "/api/v1/changes/c1");
        Assert.StartsWith("application/json", Header(request, "Content-Type"));
        AssertJson("""{"ahead":["b","a","x"],"ttl":"1h30m","labels":{"project":"app","pipeline":"gate=check"}}""", request.Body);
        Assert.Equal("c1", JsonNode.Parse(run.Out)!["id"]!.GetValue<string>());
        Assert.Contains("\n", run.Out.Trim()); // indented
    }

    [Fact]
    public async Task CreateWithoutOptionsSendsAnEmptyObjectAndAnEmptyAheadIsSentAsAnEmptyList()
    {
        Answer("PUT", "/api/v1/changes/c1", 200, Description);
        Assert.Equal(0, (await RunAsync("create", "c1")).Code);
        Assert.Equal(0, (await RunAsync("create", "c1", "--ahead", "")).Code);

        var bodies = Requests("PUT", "/api/v1/changes/c1").Select(r => r.Body).ToArray();
        Assert.Equal(2, bodies.Length);
        AssertJson("{}", bodies[0]);
        AssertJson("""{"ahead":[]}""", bodies[1]);
    }

    [Fact]
    public async Task ListSendsEveryLabelUrlEncodedAndPrintsATable()
    {
        Answer("GET", "/api/v1/changes", 200, """
            {"changes":[
              {"id":"a","ahead":[],"labels":{},"expiresAt":"2026-12-03T01:00:00Z"},
              {"id":"c1","ahead":["b","a"],"labels":{"project":"app","team":"a b"},"expiresAt":"2026-12-03T02:00:00Z"}]}
            """);
        var run = await RunAsync("list", "--label", "project=app", "--label", "team=a b&c");

        Assert.Equal(0, run.Code);
        var request = Single("GET", "/api/v1/changes");
        Assert.Equal("label=project%3Dapp&label=team%3Da%20b%26c", request.RawQuery!.TrimStart('?'));
        Assert.Equal(new[] { "project=app", "team=a b&c" }, request.Query!["label"].ToArray());
        var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Matches(@"^ID\s+EXPIRES\s+AHEAD\s+LABELS$", lines[0]);
        Assert.Matches(@"^a\s+2026-12-03T01:00:00Z\s+-\s+-$", lines[1]);
        Assert.Matches(@"^c1\s+2026-12-03T02:00:00Z\s+b,a\s+project=app,team=a b$", lines[2]);
        // Columns line up.
        Assert.Equal(lines[0].IndexOf("EXPIRES"), lines[2].IndexOf("2026"));
    }

    [Fact]
    public async Task ListJsonPrintsTheAnswerAsItCameAndSendsNoQueryWithoutLabels()
    {
        const string body = """{"changes":[{"id":"a","ahead":[],"labels":{},"expiresAt":"2026-12-03T01:00:00Z"}]}""";
        Answer("GET", "/api/v1/changes", 200, body);
        var run = await RunAsync("list", "--json");

        Assert.Equal(0, run.Code);
        Assert.Equal(body, run.Out.Trim());
        Assert.True(string.IsNullOrEmpty(Single("GET", "/api/v1/changes").RawQuery?.TrimStart('?')));
    }

    [Fact]
    public async Task ShowPrintsTheDescriptionIndentedAndAMissingChangeExitsWith4()
    {
        Answer("GET", "/api/v1/changes/c1", 200, Description);
        Answer("GET", "/api/v1/changes/gone", 404, Error("NAME_UNKNOWN", "change gone expired at 2026-12-02T01:00:00Z"));

        var shown = await RunAsync("show", "c1");
        Assert.Equal(0, shown.Code);
        Assert.Equal(1234, JsonNode.Parse(shown.Out)!["tags"]![0]!["uniqueBytes"]!.GetValue<int>());
        Assert.Contains("\n  \"ahead\"", shown.Out);

        var missing = await RunAsync("show", "gone");
        Assert.Equal(4, missing.Code);
        Assert.Equal("", missing.Out);
        Assert.Contains("NAME_UNKNOWN: change gone expired", missing.Err);
    }

    [Fact]
    public async Task DeleteExitsWith0On204With4On404AndWith0On404GivenIfExists()
    {
        Answer("DELETE", "/api/v1/changes/c1", 204, null);
        Answer("DELETE", "/api/v1/changes/gone", 404, Error("NAME_UNKNOWN", "no change gone"));

        Assert.Equal(0, (await RunAsync("delete", "c1")).Code);
        Assert.Single(Requests("DELETE", "/api/v1/changes/c1"));
        var missing = await RunAsync("delete", "gone");
        Assert.Equal(4, missing.Code);
        Assert.Contains("NAME_UNKNOWN", missing.Err);
        Assert.Equal(0, (await RunAsync("delete", "gone", "--if-exists")).Code);
    }

    [Fact]
    public async Task PromoteWithoutTagsOrExpectationsSendsNoBody()
    {
        const string promoted = """{"promoted":[{"repository":"r","tag":"t","digest":"sha256:aa","previous":null,"changed":true}]}""";
        Answer("POST", "/api/v1/changes/c1/promote", 200, promoted);
        var run = await RunAsync("promote", "c1");

        Assert.Equal(0, run.Code);
        var request = Single("POST", "/api/v1/changes/c1/promote");
        Assert.True(string.IsNullOrEmpty(request.Body));
        Assert.Null(Header(request, "Content-Type"));
        Assert.True(JsonNode.Parse(run.Out)!["promoted"]![0]!["changed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task PromoteSendsTagsAndExpectationsSplitOnTheLastColonAndTheFirstEquals()
    {
        Answer("POST", "/api/v1/changes/c1/promote", 200, """{"promoted":[]}""");
        var run = await RunAsync("promote", "c1", "--tag", "docker.io/library/app:latest", "--tag", "ns/tool:v1.2",
            "--expect", "docker.io/library/app:latest=sha256:0f=", "--expect", "ns/tool:v1.2=none");

        Assert.Equal(0, run.Code);
        AssertJson("""
            {"tags":[{"repository":"docker.io/library/app","tag":"latest"},{"repository":"ns/tool","tag":"v1.2"}],
             "expect":{"docker.io/library/app:latest":"sha256:0f=","ns/tool:v1.2":null}}
            """, Single("POST", "/api/v1/changes/c1/promote").Body);

        // Only the fields given.
        await RunAsync("promote", "c1", "--expect", "ns/tool:v1.2=none");
        AssertJson("""{"expect":{"ns/tool:v1.2":null}}""", Requests("POST", "/api/v1/changes/c1/promote").Last().Body);
    }

    [Fact]
    public async Task APromotionConflictExitsWith3AndPrintsTheMismatches()
    {
        Answer("POST", "/api/v1/changes/c1/promote", 409, """
            {"errors":[{"code":"CHANGE_CONFLICT","message":"the base moved","detail":{"mismatches":[
              {"repository":"docker.io/library/app","tag":"latest","expected":"sha256:aa","actual":"sha256:bb"},
              {"repository":"ns/tool","tag":"v1","expected":null,"actual":"sha256:cc"}]}}]}
            """);
        var run = await RunAsync("promote", "c1", "--expect", "docker.io/library/app:latest=sha256:aa", "--expect", "ns/tool:v1=none");

        Assert.Equal(3, run.Code);
        Assert.Contains("CHANGE_CONFLICT: the base moved", run.Err);
        Assert.Contains("docker.io/library/app:latest: expected sha256:aa, actual sha256:bb", run.Err);
        Assert.Contains("ns/tool:v1: expected none, actual sha256:cc", run.Err);
    }

    [Fact]
    public async Task ServerErrorsExitWith1AndPrintTheErrorWithoutAStackTrace()
    {
        Answer("GET", "/api/v1/changes/c1", 500, Error("UNKNOWN", "storage broke"));
        Answer("GET", "/api/v1/changes/c2", 502, "<html>bad gateway</html>");
        Answer("GET", "/api/v1/changes/c3", 409, Error("OTHER", "not a promotion conflict"));
        Answer("PUT", "/api/v1/changes/c4", 400, Error("CHANGE_INVALID", "a cycle: c4 -> c4"));

        var oci = await RunAsync("show", "c1");
        Assert.Equal(1, oci.Code);
        Assert.Contains("error: UNKNOWN: storage broke", oci.Err);
        var html = await RunAsync("show", "c2");
        Assert.Equal(1, html.Code);
        Assert.Contains("HTTP 502", html.Err);
        Assert.Equal(1, (await RunAsync("show", "c3")).Code);
        var invalid = await RunAsync("create", "c4", "--ahead", "c4");
        Assert.Equal(1, invalid.Code);
        Assert.Contains("CHANGE_INVALID: a cycle", invalid.Err);
        Assert.DoesNotContain("   at ", oci.Err + html.Err + invalid.Err);
    }

    [Fact]
    public async Task AnUnreachableRegistryExitsWith1()
    {
        environment["SHADOWREGISTRY_URL"] = $"http://127.0.0.1:{FakeUpstream.FreePort()}";
        var run = await RunAsync("list");

        Assert.Equal(1, run.Code);
        Assert.Contains("cannot reach", run.Err);
        Assert.DoesNotContain("   at ", run.Err);
    }

    [Fact]
    public async Task ASlowRegistryTimesOutWithExit1AndCtrlCInterrupts()
    {
        api.Server.Given(Request.Create().WithPath("/api/v1/changes/c1").UsingGet())
            .RespondWith(Response.Create().WithStatusCode(200).WithBody(Description).WithDelay(TimeSpan.FromSeconds(10)));

        var started = DateTime.UtcNow;
        var slow = await RunAsync("show", "c1", "--timeout", "0.5s");
        Assert.Equal(1, slow.Code);
        Assert.Contains("no answer", slow.Err);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8));

        using var interrupt = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var interrupted = await RunWithAsync(interrupt.Token, "", "show", "c1");
        Assert.Equal(130, interrupted.Code);
    }

    [Fact]
    public async Task TheUrlOptionWinsOverTheEnvironmentAndAPathPrefixIsKept()
    {
        Answer("GET", "/registry/api/v1/changes/c1", 200, Description);
        environment["SHADOWREGISTRY_URL"] = "http://127.0.0.1:1";
        Assert.Equal(0, (await RunAsync("show", "c1", "--url", api.Url + "/registry")).Code);
        Assert.Single(Requests("GET", "/registry/api/v1/changes/c1"));
    }

    [Fact]
    public async Task CredentialsAreSentAsBasicOrBearerFromOptionsOrEnvironment()
    {
        Answer("GET", "/api/v1/changes/c1", 200, Description);
        string Basic(string user, string password) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));

        Assert.Equal(0, (await RunWithAsync(default, "s3cret: pass\nignored\n", "show", "c1", "--username", "ci", "--password-stdin")).Code);
        Assert.Equal(0, (await RunAsync("show", "c1", "--token", "tok-1")).Code);
        environment["SHADOWREGISTRY_USERNAME"] = "gate";
        environment["SHADOWREGISTRY_PASSWORD"] = "pw";
        Assert.Equal(0, (await RunAsync("show", "c1")).Code);
        environment["SHADOWREGISTRY_TOKEN"] = "tok-env";
        Assert.Equal(0, (await RunAsync("show", "c1")).Code);
        // An explicit user on the command line wins over the environment's token.
        Assert.Equal(0, (await RunAsync("show", "c1", "--username", "ci")).Code);

        environment.Clear();
        environment["SHADOWREGISTRY_URL"] = api.Url;
        Assert.Equal(0, (await RunAsync("show", "c1")).Code);

        var sent = Requests("GET", "/api/v1/changes/c1").Select(r => Header(r, "Authorization")).ToArray();
        Assert.Equal(new[] { Basic("ci", "s3cret: pass"), "Bearer tok-1", Basic("gate", "pw"), "Bearer tok-env", Basic("ci", "pw"), null }, sent);
    }

    [Theory]
    [InlineData("")]
    [InlineData("bogus")]
    [InlineData("show")]
    [InlineData("show", "a", "b")]
    [InlineData("show", "Not_An_Id")]
    [InlineData("delete", "..")]
    [InlineData("list", "c1")]
    [InlineData("show", "c1", "--json")]
    [InlineData("create", "c1", "--tag", "r:t")]
    [InlineData("create", "c1", "--label", "novalue")]
    [InlineData("create", "c1", "--label", "k=1", "--label", "k=2")]
    [InlineData("create", "c1", "--ttl")]
    [InlineData("promote", "c1", "--tag", "notag")]
    [InlineData("promote", "c1", "--tag", "repo:")]
    [InlineData("promote", "c1", "--expect", "repo:tag")]
    [InlineData("promote", "c1", "--expect", "repo:tag=")]
    [InlineData("promote", "c1", "--expect", "r:t=none", "--expect", "r:t=sha256:aa")]
    [InlineData("show", "c1", "--password-stdin")]
    [InlineData("show", "c1", "--username", "u", "--token", "t")]
    [InlineData("show", "c1", "--username", "u")]
    [InlineData("show", "c1", "--insecure", "--ca-cert", "/nonexistent")]
    [InlineData("show", "c1", "--ca-cert", "/nonexistent")]
    [InlineData("show", "c1", "--timeout", "soon")]
    [InlineData("show", "c1", "--url", "ftp://registry")]
    [InlineData("show", "c1", "--bogus")]
    [InlineData("show", "c1", "-x")]
    [InlineData("show", "c1", "--insecure=yes")]
    public async Task UsageErrorsExitWith2PrintTheUsageAndSendNothing(params string[] args)
    {
        var run = await RunAsync(args.Where(a => a.Length > 0 || args.Length > 1).ToArray());

        Assert.Equal(2, run.Code);
        Assert.Contains("Usage: ShadowRegistry changes", run.Err);
        Assert.Empty(api.Server.LogEntries);
    }

    [Fact]
    public async Task AMissingUrlIsAUsageErrorAndHelpExitsWith0()
    {
        environment.Clear();
        var run = await RunAsync("list");
        Assert.Equal(2, run.Code);
        Assert.Contains("SHADOWREGISTRY_URL", run.Err);

        var help = await RunAsync("promote", "--help");
        Assert.Equal(0, help.Code);
        Assert.Contains("--expect", help.Out);
        Assert.Contains("ShadowRegistry changes", CommandLine.Usage);
    }

    [Fact]
    public async Task TlsIsVerifiedAgainstTheSystemOrAnExtraCaOrSkippedWithInsecure()
    {
        using var scratch = new ScratchDirectory("cli-tls");
        using var pki = TestPki.Create(scratch.Path);
        await using var server = await RegistryServer.StartAsync(pki.ServerArgs);
        var url = server.BaseAddress.ToString();

        // A change that does not exist is 404 whether or not the server has the management API yet: proof that the
        // TLS handshake succeeded.
        var untrusted = await RunAsync("show", "absent", "--url", url);
        Assert.Equal(1, untrusted.Code);
        Assert.Contains("cannot reach", untrusted.Err);

        var trusted = await RunAsync("show", "absent", "--url", url, "--ca-cert", pki.CaPath);
        Assert.Equal(4, trusted.Code);
        Assert.DoesNotContain("warning", trusted.Err);

        var insecure = await RunAsync("show", "absent", "--url", url, "--insecure");
        Assert.Equal(4, insecure.Code);
        Assert.Contains("warning: --insecure", insecure.Err);
    }

    private Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => RunWithAsync(default, "", args);

    private async Task<(int Code, string Out, string Err)> RunWithAsync(CancellationToken cancellationToken, string stdin, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await ChangesCommand.RunAsync(args, new StringReader(stdin), output, error,
            name => environment.GetValueOrDefault(name), cancellationToken);
        return (code, output.ToString(), error.ToString());
    }

    private void Answer(string method, string path, int status, string? body)
    {
        var response = Response.Create().WithStatusCode(status);
        if (body is not null) response = response.WithHeader("Content-Type", "application/json").WithBody(body);
        api.Server.Given(Request.Create().WithPath(path).UsingMethod(method)).RespondWith(response);
    }

    private static string Error(string code, string message) =>
        new JsonObject { ["errors"] = new JsonArray(new JsonObject { ["code"] = code, ["message"] = message, ["detail"] = null }) }.ToJsonString();

    private IRequestMessage[] Requests(string method, string path) =>
        [.. api.Server.LogEntries.Select(e => e.RequestMessage).Where(r => r.Method == method && r.Path == path)];

    private IRequestMessage Single(string method, string path)
    {
        Assert.Single(api.Server.LogEntries);
        return Assert.Single(Requests(method, path));
    }

    private static string? Header(IRequestMessage request, string name) =>
        request.Headers?.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value?.FirstOrDefault();

    private static void AssertJson(string expected, string? actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(actual!)), $"expected {expected}\nactual   {actual}");
}
