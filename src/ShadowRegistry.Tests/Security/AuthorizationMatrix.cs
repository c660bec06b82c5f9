using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Security;

/// <summary>Who sends a request.</summary>
public enum Principal
{
    /// <summary>No Authorization header at all.</summary>
    Anonymous,

    /// <summary>An anonymous token from the token endpoint (only handed out in anonymous-pull mode).</summary>
    AnonymousToken,

    /// <summary><see cref="AuthTestSupport.Reader"/>: read role everywhere.</summary>
    Reader,

    /// <summary><see cref="AuthTestSupport.Team"/>: write role on team-a/** only.</summary>
    Team,

    /// <summary><see cref="AuthTestSupport.Writer"/>: write role everywhere.</summary>
    Writer,
}

/// <summary>Which repository a cell is about.</summary>
public enum Repo
{
    /// <summary>No repository: GET /v2/ and the catalog.</summary>
    None,

    /// <summary>team-a/app: the restricted writer's own repository.</summary>
    Own,

    /// <summary>team-b/app: another team's repository.</summary>
    Other,

    /// <summary>
    /// up-only/app: served by the default upstream only, nothing pushed locally. Cells that push or delete use a
    /// fresh repository of the same kind (up-only/cN) so that the repository stays upstream-only for every cell.
    /// </summary>
    UpstreamOnly,
}

public enum Endpoint
{
    VersionCheck,
    Catalog,
    TagsList,
    GetManifestByTag,
    HeadManifestByTag,
    GetManifestByDigest,
    HeadManifestByDigest,
    PutManifest,
    DeleteManifestByTag,
    DeleteManifestByDigest,
    GetBlob,
    HeadBlob,
    DeleteBlob,
    StartUpload,
    MonolithicUpload,
    PatchUpload,
    PutUpload,
    GetUpload,
    DeleteUpload,
    GetReferrers,

    /// <summary>POST ?mount= of the repository's own layer, from the repository into a sibling (ns/mnt-N).</summary>
    MountFromSameNamespace,

    /// <summary>POST team-a/mnt-N ?mount=(team-b's secret layer)&amp;from=team-b/app.</summary>
    MountOtherTeamsLayer,

    /// <summary>POST team-a/mnt-N ?mount=(team-b's secret layer)&amp;from=team-a/empty: the source does not hold it.</summary>
    MountFromRepositoryWithoutTheBlob,

    /// <summary>POST team-a/mnt-N ?mount=(team-a's layer)&amp;from=team-a/app.</summary>
    MountOwnLayer,

    /// <summary>POST team-a/mnt-N ?mount=(the upstream image's layer)&amp;from=up-only/app: confirmed by that upstream repository.</summary>
    MountUpstreamLayer,

    /// <summary>POST team-a/mnt-N ?mount=(team-b's secret layer)&amp;from=up-only/app: the upstream repository does not have it.</summary>
    MountLocalLayerThroughUpstreamRepository,

    /// <summary>PATCH/PUT/GET/DELETE, through team-a/app, of a session the full writer opened in team-b/app.</summary>
    PatchForeignSession,
    PutForeignSession,
    GetForeignSession,
    DeleteForeignSession,
}

/// <summary>
/// The authorization matrix: the expected answer of every (principal, repository, endpoint) cell, derived from the
/// rules in docs/authentication.md and README.md, and the code that runs one cell and checks its side effects.
/// </summary>
public static class AuthorizationMatrix
{
    public const string OwnRepository = "team-a/app";
    public const string OtherRepository = "team-b/app";
    public const string UpstreamRepository = "up-only/app";

    /// <summary>A repository in team-a that holds nothing (a mount source that does not have the blob).</summary>
    public const string EmptyRepository = "team-a/empty";

    private static readonly Endpoint[] PerRepository =
    [
        Endpoint.TagsList, Endpoint.GetManifestByTag, Endpoint.HeadManifestByTag, Endpoint.GetManifestByDigest, Endpoint.HeadManifestByDigest,
        Endpoint.PutManifest, Endpoint.DeleteManifestByTag, Endpoint.DeleteManifestByDigest, Endpoint.GetBlob, Endpoint.HeadBlob, Endpoint.DeleteBlob,
        Endpoint.StartUpload, Endpoint.MonolithicUpload, Endpoint.PatchUpload, Endpoint.PutUpload, Endpoint.GetUpload, Endpoint.DeleteUpload,
        Endpoint.GetReferrers, Endpoint.MountFromSameNamespace,
    ];

    private static readonly Endpoint[] MountScenarios =
    [
        Endpoint.MountOtherTeamsLayer, Endpoint.MountFromRepositoryWithoutTheBlob, Endpoint.MountOwnLayer,
        Endpoint.MountUpstreamLayer, Endpoint.MountLocalLayerThroughUpstreamRepository,
    ];

    private static readonly Endpoint[] ForeignSession =
        [Endpoint.PatchForeignSession, Endpoint.PutForeignSession, Endpoint.GetForeignSession, Endpoint.DeleteForeignSession];

    /// <summary>Every cell of the restricted-mode matrix.</summary>
    public static IEnumerable<object[]> RestrictedCells() =>
        Cells(anonymousPull: false, [Principal.Anonymous, Principal.Reader, Principal.Team, Principal.Writer],
            PerRepository, [.. MountScenarios, .. ForeignSession]);

    /// <summary>The smaller matrix of anonymous-pull mode.</summary>
    public static IEnumerable<object[]> AnonymousPullCells() =>
        Cells(anonymousPull: true, [Principal.Anonymous, Principal.AnonymousToken, Principal.Team, Principal.Writer],
            [
                Endpoint.TagsList, Endpoint.GetManifestByTag, Endpoint.HeadManifestByDigest, Endpoint.GetBlob, Endpoint.HeadBlob, Endpoint.GetReferrers,
                Endpoint.PutManifest, Endpoint.DeleteManifestByTag, Endpoint.DeleteBlob, Endpoint.StartUpload, Endpoint.MonolithicUpload, Endpoint.PatchUpload,
            ],
            [Endpoint.MountOtherTeamsLayer, Endpoint.MountFromRepositoryWithoutTheBlob]);

    private static IEnumerable<object[]> Cells(bool anonymousPull, Principal[] principals, Endpoint[] perRepository, Endpoint[] ownOnly)
    {
        foreach (var principal in principals)
        {
            yield return [principal, Repo.None, Endpoint.VersionCheck, Expected(anonymousPull, principal, Repo.None, Endpoint.VersionCheck)];
            yield return [principal, Repo.None, Endpoint.Catalog, Expected(anonymousPull, principal, Repo.None, Endpoint.Catalog)];
            foreach (var repo in new[] { Repo.Own, Repo.Other, Repo.UpstreamOnly })
            foreach (var endpoint in perRepository)
                yield return [principal, repo, endpoint, Expected(anonymousPull, principal, repo, endpoint)];
            foreach (var endpoint in ownOnly)
                yield return [principal, Repo.Own, endpoint, Expected(anonymousPull, principal, Repo.Own, endpoint)];
        }
    }

    private enum Need { Probe, Catalog, Pull, Push, Delete }

    /// <summary>
    /// The expected answer, as "STATUS" or "STATUS CODE", alternatives separated by '|'. A request the principal is
    /// not allowed gets 401 UNAUTHORIZED (anonymous, with or without an anonymous token) or 403 DENIED (a user);
    /// an allowed one gets the answer the API gives for that content.
    /// </summary>
    public static string Expected(bool anonymousPull, Principal principal, Repo repo, Endpoint endpoint)
    {
        var name = RepositoryOf(repo);
        var denied = principal is Principal.Anonymous or Principal.AnonymousToken ? "401 UNAUTHORIZED" : "403 DENIED";
        var need = endpoint switch
        {
            Endpoint.VersionCheck => Need.Probe,
            Endpoint.Catalog => Need.Catalog,
            Endpoint.TagsList or Endpoint.GetManifestByTag or Endpoint.HeadManifestByTag or Endpoint.GetManifestByDigest
                or Endpoint.HeadManifestByDigest or Endpoint.GetBlob or Endpoint.HeadBlob or Endpoint.GetReferrers => Need.Pull,
            Endpoint.DeleteManifestByTag or Endpoint.DeleteManifestByDigest or Endpoint.DeleteBlob => Need.Delete,
            _ => Need.Push, // manifest PUT, every upload endpoint (status too), and the target of a mount
        };
        if (!Allowed(anonymousPull, principal, need, name)) return denied;

        var local = repo is Repo.Own or Repo.Other;
        return endpoint switch
        {
            Endpoint.VersionCheck or Endpoint.Catalog or Endpoint.TagsList => "200",
            Endpoint.GetManifestByTag or Endpoint.HeadManifestByTag or Endpoint.GetManifestByDigest or Endpoint.HeadManifestByDigest => "200",
            Endpoint.GetBlob or Endpoint.HeadBlob or Endpoint.GetReferrers => "200",
            Endpoint.PutManifest => "201",
            // Deletes act on local content only: an upstream-only repository has nothing to delete.
            Endpoint.DeleteManifestByTag or Endpoint.DeleteManifestByDigest => local ? "202" : "404 MANIFEST_UNKNOWN",
            Endpoint.DeleteBlob => local ? "202" : "404 BLOB_UNKNOWN",
            Endpoint.StartUpload => "202",
            Endpoint.MonolithicUpload or Endpoint.PutUpload => "201",
            Endpoint.PatchUpload => "202",
            Endpoint.GetUpload or Endpoint.DeleteUpload => "204",
            // A mount succeeds only with pull on `from` and when `from` holds the blob; otherwise a fresh session.
            Endpoint.MountFromSameNamespace => Allowed(anonymousPull, principal, Need.Pull, name) ? "201" : "202",
            Endpoint.MountOtherTeamsLayer => Allowed(anonymousPull, principal, Need.Pull, OtherRepository) ? "201" : "202",
            Endpoint.MountFromRepositoryWithoutTheBlob => "202",
            Endpoint.MountOwnLayer => Allowed(anonymousPull, principal, Need.Pull, OwnRepository) ? "201" : "202",
            Endpoint.MountUpstreamLayer => Allowed(anonymousPull, principal, Need.Pull, UpstreamRepository) ? "201" : "202",
            Endpoint.MountLocalLayerThroughUpstreamRepository => "202",
            // The session belongs to team-b/app: through team-a/app it does not exist. A principal who may push to
            // team-a/app gets 404 BLOB_UPLOAD_UNKNOWN (the id names no session of that repository); the restricted
            // writer may also be refused outright, since the session is in a repository it cannot reach.
            Endpoint.PatchForeignSession or Endpoint.PutForeignSession or Endpoint.GetForeignSession or Endpoint.DeleteForeignSession =>
                principal == Principal.Team ? "404 BLOB_UPLOAD_UNKNOWN|403 DENIED" : "404 BLOB_UPLOAD_UNKNOWN",
            _ => throw new ArgumentOutOfRangeException(nameof(endpoint)),
        };
    }

    private static bool Allowed(bool anonymousPull, Principal principal, Need need, string repository)
    {
        var covered = principal == Principal.Writer || principal == Principal.Team && repository.StartsWith("team-a/", StringComparison.Ordinal);
        return need switch
        {
            Need.Probe => principal != Principal.Anonymous,
            Need.Catalog => anonymousPull || principal is Principal.Reader or Principal.Writer,
            Need.Pull => anonymousPull || principal == Principal.Reader || covered,
            _ => covered,
        };
    }

    public static string RepositoryOf(Repo repo) => repo switch
    {
        Repo.Own => OwnRepository,
        Repo.Other => OtherRepository,
        Repo.UpstreamOnly => UpstreamRepository,
        _ => OwnRepository,
    };

    public static async Task RunCellAsync(MatrixFixture fixture, Principal principal, Repo repo, Endpoint endpoint, string expected)
    {
        var cell = new MatrixCell(fixture, principal, repo, endpoint, expected);
        await cell.RunAsync();
    }
}

/// <summary>An image pushed for the matrix: manifest, config, its secret layer, and the referrer pointing at it.</summary>
public sealed record MatrixImage(string Repository, byte[] Manifest, string Digest, byte[] Config, byte[] Layer, string? ReferrerDigest)
{
    public string ConfigDigest => OciHttp.Sha256(Config);

    public string LayerDigest => OciHttp.Sha256(Layer);

    public static byte[] ManifestFor(byte[] config, byte[] layer, string? annotation = null)
    {
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", OciHttp.Sha256(config), config.Length),
            ["layers"] = new JsonArray(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", OciHttp.Sha256(layer), layer.Length)),
        };
        if (annotation is not null) manifest["annotations"] = new JsonObject { ["cell"] = annotation };
        return Encoding.UTF8.GetBytes(manifest.ToJsonString());
    }
}

/// <summary>
/// One registry for a whole matrix: a default upstream (FakeUpstream), team-a/app and team-b/app pushed by the full
/// writer, each with its own secret layer and a referrer, and up-only/app served by the upstream only.
/// </summary>
public abstract class MatrixFixture : IAsyncLifetime
{
    private readonly ConcurrentDictionary<string, string> tokens = new();
    private int counter;

    protected abstract bool AnonymousPull { get; }

    public RegistryServer Server { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public FakeUpstream Upstream { get; private set; } = null!;

    public MatrixImage Own { get; private set; } = null!;

    public MatrixImage Other { get; private set; } = null!;

    /// <summary>The image up-only/app (and every up-only/cN) has upstream.</summary>
    public MatrixImage UpstreamImage { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = FakeUpstream.Start();
        Server = await RegistryServer.StartAsync(AuthTestSupport.Args(AnonymousPull, Upstream.RegistryArgs()));
        Client = Server.CreateClient();
        Own = await PushImageAsync(AuthorizationMatrix.OwnRepository, seed: 101);
        Other = await PushImageAsync(AuthorizationMatrix.OtherRepository, seed: 202);
        var (manifest, digest, config, layer) = FakeUpstream.Image(303);
        UpstreamImage = new MatrixImage(AuthorizationMatrix.UpstreamRepository, manifest, digest, config, layer, null);
        ServeUpstreamOnly(AuthorizationMatrix.UpstreamRepository);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        Upstream.Dispose();
    }

    /// <summary>A name no other cell uses.</summary>
    public string Unique(string prefix) => $"{prefix}{Interlocked.Increment(ref counter)}";

    public void ServeUpstreamOnly(string repository)
    {
        Upstream.ServeManifest(repository, "v1", UpstreamImage.Manifest);
        Upstream.ServeManifest(repository, UpstreamImage.Digest, UpstreamImage.Manifest);
        Upstream.ServeBlob(repository, UpstreamImage.Config);
        Upstream.ServeBlob(repository, UpstreamImage.Layer);
        Upstream.ServeTags(repository, "v1");
    }

    /// <summary>A token for the principal, asked for the given scopes (null for an anonymous client without a token).</summary>
    public async Task<string?> TokenAsync(Principal principal, params string[] scopes)
    {
        var user = principal switch
        {
            Principal.Anonymous => null,
            Principal.AnonymousToken => null,
            Principal.Reader => AuthTestSupport.Reader,
            Principal.Team => AuthTestSupport.Team,
            _ => AuthTestSupport.Writer,
        };
        if (principal == Principal.Anonymous) return null;
        var key = $"{principal} {string.Join(' ', scopes.Order(StringComparer.Ordinal))}";
        if (tokens.TryGetValue(key, out var cached)) return cached;
        var token = await AuthTestSupport.TokenAsync(Client, user, scopes);
        tokens[key] = token;
        return token;
    }

    /// <summary>The full writer's token for everything on these repositories.</summary>
    public Task<string?> WriterTokenAsync(params string[] repositories) =>
        TokenAsync(Principal.Writer, repositories.Select(name => $"repository:{name}:pull,push,delete").ToArray());

    public async Task<Reply> SendAsync(HttpMethod method, string path, string? token, HttpContent? content = null, Action<HttpRequestMessage>? configure = null)
    {
        using var request = AuthTestSupport.Request(method, path, token);
        request.Content = content;
        configure?.Invoke(request);
        using var response = await Client.SendAsync(request);
        return await Reply.FromAsync(response);
    }

    /// <summary>As the full writer; asserts the status (setup steps must work for a cell to mean anything).</summary>
    public async Task<Reply> WriterSendAsync(HttpMethod method, string path, string repository, int expected, HttpContent? content = null,
        Action<HttpRequestMessage>? configure = null)
    {
        var reply = await SendAsync(method, path, await WriterTokenAsync(repository), content, configure);
        Assert.True(reply.Status == expected, $"setup: {method} {path} as the full writer: expected {expected}, got {reply.Summary}: {reply.Excerpt()}");
        return reply;
    }

    public Task<Reply> WriterPushBlobAsync(string repository, byte[] blob) =>
        WriterSendAsync(HttpMethod.Post, $"v2/{repository}/blobs/uploads/?digest={OciHttp.Sha256(blob)}", repository, 201, new ByteArrayContent(blob));

    public Task<Reply> WriterPutManifestAsync(string repository, string reference, byte[] manifest) =>
        WriterSendAsync(HttpMethod.Put, $"v2/{repository}/manifests/{reference}", repository, 201, ManifestContent(manifest));

    public static ByteArrayContent ManifestContent(byte[] manifest)
    {
        var content = new ByteArrayContent(manifest);
        content.Headers.ContentType = new MediaTypeHeaderValue(OciHttp.OciManifest);
        return content;
    }

    private async Task<MatrixImage> PushImageAsync(string repository, int seed)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"matrix\":{seed}}}");
        var layer = OciHttp.RandomBytes(2048, seed); // the repository's secret
        await WriterPushBlobAsync(repository, config);
        await WriterPushBlobAsync(repository, layer);
        var manifest = MatrixImage.ManifestFor(config, layer);
        await WriterPutManifestAsync(repository, "v1", manifest);
        var digest = OciHttp.Sha256(manifest);

        // A referrer: an artifact manifest whose subject is the image.
        var empty = "{}"u8.ToArray();
        await WriterPushBlobAsync(repository, empty);
        var emptyDescriptor = OciHttp.Descriptor("application/vnd.oci.empty.v1+json", OciHttp.Sha256(empty), empty.Length);
        var referrer = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["artifactType"] = "application/vnd.example.signature",
            ["config"] = emptyDescriptor,
            ["layers"] = new JsonArray(emptyDescriptor.DeepClone()),
            ["subject"] = OciHttp.Descriptor(OciHttp.OciManifest, digest, manifest.Length),
        }.ToJsonString());
        var referrerDigest = OciHttp.Sha256(referrer);
        var pushed = await WriterPutManifestAsync(repository, referrerDigest, referrer);
        Assert.Equal(digest, pushed.Header("OCI-Subject"));
        return new MatrixImage(repository, manifest, digest, config, layer, referrerDigest);
    }
}

public sealed class RestrictedMatrixFixture : MatrixFixture
{
    protected override bool AnonymousPull => false;
}

public sealed class AnonymousPullMatrixFixture : MatrixFixture
{
    protected override bool AnonymousPull => true;
}

/// <summary>Runs one cell: prepares what it needs (as the full writer), sends the request, checks answer and side effects.</summary>
internal sealed class MatrixCell(MatrixFixture fixture, Principal principal, Repo repo, Endpoint endpoint, string expected)
{
    private readonly List<string> problems = [];
    private string? token;

    private bool Succeeds => Status(expected) < 300;

    private static int Status(string alternative) => int.Parse(alternative.Split('|')[0].Split(' ')[0]);

    public async Task RunAsync()
    {
        var (reply, scope) = await SendAsync();
        var sideEffects = problems.ToList();
        problems.Clear();
        CheckAnswer(reply, scope);
        problems.AddRange(sideEffects);
        Assert.True(problems.Count == 0,
            $"{principal} {endpoint} on {repo}: expected {expected}, got {reply.Summary}\n  - {string.Join("\n  - ", problems)}");
    }

    private void CheckAnswer(Reply reply, string? challengeScope)
    {
        var alternatives = expected.Split('|');
        var matched = alternatives.FirstOrDefault(alternative =>
        {
            var parts = alternative.Split(' ');
            if (int.Parse(parts[0]) != reply.Status) return false;
            return parts.Length == 1 || reply.Method == "HEAD" || reply.ErrorCode == parts[1];
        });
        if (matched is null)
        {
            problems.Add($"answer {reply.Summary} is not {expected}; body: {reply.Excerpt()}");
            return;
        }
        if (reply.Status >= 400 && reply.Method != "HEAD" && SecurityChecks.OciErrorProblem(reply) is { } shape)
            problems.Add($"error body is not OCI error JSON ({shape})");
        if (reply.Status is 401 or 403)
        {
            var challenge = SecurityChecks.BearerChallenge(reply);
            if (challenge is null)
            {
                problems.Add($"no Bearer challenge in WWW-Authenticate: '{reply.Header("WWW-Authenticate")}'");
                return;
            }
            var realm = new Uri(fixture.Server.BaseAddress, "auth/token").ToString();
            if (challenge.GetValueOrDefault("realm") != realm) problems.Add($"challenge realm '{challenge.GetValueOrDefault("realm")}', expected '{realm}'");
            if (challenge.GetValueOrDefault("service") != AuthTestSupport.Service) problems.Add($"challenge service '{challenge.GetValueOrDefault("service")}'");
            if (challenge.GetValueOrDefault("scope") != challengeScope)
                problems.Add($"challenge scope '{challenge.GetValueOrDefault("scope")}', expected '{challengeScope}'");
            var error = challenge.GetValueOrDefault("error");
            var expectedError = token is null ? null : "insufficient_scope";
            if (error != expectedError) problems.Add($"challenge error '{error}', expected '{expectedError}'");
        }
    }

    /// <summary>Sends the cell's request; returns the answer and the scope a refusal's challenge must name.</summary>
    private async Task<(Reply Reply, string? ChallengeScope)> SendAsync()
    {
        var name = repo == Repo.UpstreamOnly && Mutates ? fixture.Unique("up-only/c") : AuthorizationMatrix.RepositoryOf(repo);
        if (name != AuthorizationMatrix.UpstreamRepository && repo == Repo.UpstreamOnly) fixture.ServeUpstreamOnly(name);
        var image = repo switch { Repo.Other => fixture.Other, Repo.UpstreamOnly => fixture.UpstreamImage, _ => fixture.Own };
        var local = repo is Repo.Own or Repo.Other;
        var all = $"repository:{name}:pull,push,delete";
        var pull = $"repository:{name}:pull";
        var push = $"repository:{name}:pull,push";
        var delete = $"repository:{name}:delete";

        switch (endpoint)
        {
            case Endpoint.VersionCheck:
            {
                token = await fixture.TokenAsync(principal, all);
                var reply = await Send(HttpMethod.Get, "v2/");
                if (reply.Status == 200 && reply.Text != "{}") problems.Add($"GET /v2/ body '{reply.Excerpt()}', expected {{}}");
                return (reply, null);
            }
            case Endpoint.Catalog:
            {
                token = await fixture.TokenAsync(principal, "registry:catalog:*");
                var reply = await Send(HttpMethod.Get, "v2/_catalog");
                if (reply.Status == 200)
                {
                    var names = JsonDocument.Parse(reply.Body).RootElement.GetProperty("repositories").EnumerateArray().Select(e => e.GetString()!).ToList();
                    foreach (var expectedName in new[] { AuthorizationMatrix.OwnRepository, AuthorizationMatrix.OtherRepository })
                        if (!names.Any(n => n == expectedName || n.EndsWith("/" + expectedName, StringComparison.Ordinal)))
                            problems.Add($"catalog {string.Join(",", names)} lacks {expectedName}");
                }
                return (reply, "registry:catalog:*");
            }
            case Endpoint.TagsList:
            {
                token = await fixture.TokenAsync(principal, all);
                var reply = await Send(HttpMethod.Get, $"v2/{name}/tags/list");
                if (reply.Status == 200)
                {
                    var tags = JsonDocument.Parse(reply.Body).RootElement.GetProperty("tags").EnumerateArray().Select(e => e.GetString()).ToList();
                    if (!tags.Contains("v1")) problems.Add($"tag list [{string.Join(",", tags)}] lacks v1");
                }
                return (reply, pull);
            }
            case Endpoint.GetManifestByTag or Endpoint.HeadManifestByTag or Endpoint.GetManifestByDigest or Endpoint.HeadManifestByDigest:
            {
                token = await fixture.TokenAsync(principal, all);
                var head = endpoint is Endpoint.HeadManifestByTag or Endpoint.HeadManifestByDigest;
                var reference = endpoint is Endpoint.GetManifestByTag or Endpoint.HeadManifestByTag ? "v1" : image.Digest;
                var reply = await Send(head ? HttpMethod.Head : HttpMethod.Get, $"v2/{name}/manifests/{reference}",
                    configure: r => r.Headers.Accept.ParseAdd(OciHttp.OciManifest));
                if (reply.Status == 200)
                {
                    if (reply.Header("Docker-Content-Digest") != image.Digest) problems.Add($"Docker-Content-Digest {reply.Header("Docker-Content-Digest")}, expected {image.Digest}");
                    if (!head && !reply.Body.SequenceEqual(image.Manifest)) problems.Add("manifest body differs from the image's");
                }
                return (reply, pull);
            }
            case Endpoint.GetBlob or Endpoint.HeadBlob:
            {
                token = await fixture.TokenAsync(principal, all);
                var head = endpoint == Endpoint.HeadBlob;
                var reply = await Send(head ? HttpMethod.Head : HttpMethod.Get, $"v2/{name}/blobs/{image.LayerDigest}");
                if (reply.Status == 200)
                {
                    if (head && reply.Header("Content-Length") != image.Layer.Length.ToString()) problems.Add($"HEAD Content-Length {reply.Header("Content-Length")}, expected {image.Layer.Length}");
                    if (!head && !reply.Body.SequenceEqual(image.Layer)) problems.Add("blob body differs from the layer");
                }
                return (reply, pull);
            }
            case Endpoint.GetReferrers:
            {
                token = await fixture.TokenAsync(principal, all);
                var reply = await Send(HttpMethod.Get, $"v2/{name}/referrers/{image.Digest}");
                if (reply.Status == 200)
                {
                    var manifests = JsonDocument.Parse(reply.Body).RootElement.GetProperty("manifests").EnumerateArray()
                        .Select(e => e.GetProperty("digest").GetString()).ToList();
                    // Referrers are local only: the upstream-only repository has none.
                    var wanted = image.ReferrerDigest is { } referrer ? new List<string?> { referrer } : [];
                    if (!manifests.SequenceEqual(wanted)) problems.Add($"referrers [{string.Join(",", manifests)}], expected [{string.Join(",", wanted)}]");
                }
                return (reply, pull);
            }
            case Endpoint.PutManifest:
            {
                token = await fixture.TokenAsync(principal, all);
                var tag = fixture.Unique("put-");
                var reply = await Send(HttpMethod.Put, $"v2/{name}/manifests/{tag}", MatrixFixture.ManifestContent(image.Manifest));
                await ExpectManifestAsync(name, tag, exists: Succeeds, "after the PUT");
                return (reply, push);
            }
            case Endpoint.DeleteManifestByTag:
            {
                var tag = "v1";
                if (local)
                {
                    tag = fixture.Unique("del-");
                    await fixture.WriterPutManifestAsync(name, tag, image.Manifest);
                }
                token = await fixture.TokenAsync(principal, all);
                var reply = await Send(HttpMethod.Delete, $"v2/{name}/manifests/{tag}");
                await ExpectManifestAsync(name, tag, exists: !(Succeeds && local), "after the DELETE");
                return (reply, delete);
            }
            case Endpoint.DeleteManifestByDigest:
            {
                var digest = image.Digest;
                if (local)
                {
                    var manifest = MatrixImage.ManifestFor(image.Config, image.Layer, fixture.Unique("cell-"));
                    digest = OciHttp.Sha256(manifest);
                    await fixture.WriterPutManifestAsync(name, digest, manifest);
                }
                token = await fixture.TokenAsync(principal, all);
                var reply = await Send(HttpMethod.Delete, $"v2/{name}/manifests/{digest}");
                await ExpectManifestAsync(name, digest, exists: !(Succeeds && local), "after the DELETE");
                return (reply, delete);
            }
            case Endpoint.DeleteBlob:
            {
                var digest = image.LayerDigest;
                if (local)
                {
                    var blob = FreshBlob();
                    digest = OciHttp.Sha256(blob);
                    await fixture.WriterPushBlobAsync(name, blob);
                }
                token = await fixture.TokenAsync(principal, all);
                var reply = await Send(HttpMethod.Delete, $"v2/{name}/blobs/{digest}");
                await ExpectBlobAsync(name, digest, exists: !(Succeeds && local), "after the DELETE");
                return (reply, delete);
            }
            case Endpoint.StartUpload:
            {
                token = await fixture.TokenAsync(principal, all);
                var before = SecurityChecks.UploadSessions(fixture.Server.StorageRoot);
                var reply = await Send(HttpMethod.Post, $"v2/{name}/blobs/uploads/");
                var opened = SecurityChecks.UploadSessions(fixture.Server.StorageRoot).Except(before).ToList();
                if (reply.Status == 202 && reply.Header("Location") is null) problems.Add("202 without a Location");
                if (!Succeeds && opened.Count > 0) problems.Add($"a refused POST opened upload session(s) {string.Join(",", opened)}");
                return (reply, push);
            }
            case Endpoint.MonolithicUpload:
            {
                token = await fixture.TokenAsync(principal, all);
                var blob = FreshBlob();
                var reply = await Send(HttpMethod.Post, $"v2/{name}/blobs/uploads/?digest={OciHttp.Sha256(blob)}", new ByteArrayContent(blob));
                await ExpectBlobAsync(name, OciHttp.Sha256(blob), exists: Succeeds, "after the upload");
                return (reply, push);
            }
            case Endpoint.PatchUpload or Endpoint.PutUpload or Endpoint.GetUpload or Endpoint.DeleteUpload:
                return (await SessionRequestAsync(name, name, all), push);
            case Endpoint.PatchForeignSession or Endpoint.PutForeignSession or Endpoint.GetForeignSession or Endpoint.DeleteForeignSession:
                return (await SessionRequestAsync(AuthorizationMatrix.OwnRepository, AuthorizationMatrix.OtherRepository, $"repository:{AuthorizationMatrix.OwnRepository}:pull,push,delete"),
                    $"repository:{AuthorizationMatrix.OwnRepository}:pull,push");
            default:
                return await MountAsync(name, image);
        }
    }

    private bool Mutates => endpoint is Endpoint.PutManifest or Endpoint.DeleteManifestByTag or Endpoint.DeleteManifestByDigest or Endpoint.DeleteBlob
        or Endpoint.StartUpload or Endpoint.MonolithicUpload or Endpoint.PatchUpload or Endpoint.PutUpload or Endpoint.GetUpload
        or Endpoint.DeleteUpload or Endpoint.MountFromSameNamespace;

    private byte[] FreshBlob() => Encoding.UTF8.GetBytes($"fresh blob {fixture.Unique("blob-")} {Guid.NewGuid()}");

    /// <summary>
    /// PATCH/PUT/GET/DELETE of an upload session, sent through <paramref name="path"/>. The session is opened in
    /// <paramref name="sessionRepository"/> by the principal itself when it may push there, else by the full writer.
    /// </summary>
    private async Task<Reply> SessionRequestAsync(string path, string sessionRepository, string scope)
    {
        token = await fixture.TokenAsync(principal, scope);
        var foreign = path != sessionRepository;
        var ownSession = !foreign && Succeeds;
        var opener = ownSession ? token : await fixture.WriterTokenAsync(sessionRepository);
        var start = await fixture.SendAsync(HttpMethod.Post, $"v2/{sessionRepository}/blobs/uploads/", opener);
        Assert.True(start.Status == 202, $"setup: opening a session in {sessionRepository} gave {start.Summary}: {start.Excerpt()}");
        var location = start.Header("Location")!;
        var id = location.TrimEnd('/').Split('/')[^1].Split('?')[0];
        var url = $"/v2/{path}/blobs/uploads/{id}";
        var chunk = FreshBlob();
        var digest = OciHttp.Sha256(chunk);

        Reply reply;
        switch (endpoint)
        {
            case Endpoint.PatchUpload or Endpoint.PatchForeignSession:
                reply = await Send(HttpMethod.Patch, url, new ByteArrayContent(chunk),
                    r => r.Content!.Headers.TryAddWithoutValidation("Content-Range", $"0-{chunk.Length - 1}"));
                if (reply.Status == 202 && reply.Header("Range") != $"0-{chunk.Length - 1}") problems.Add($"Range after PATCH '{reply.Header("Range")}'");
                break;
            case Endpoint.PutUpload or Endpoint.PutForeignSession:
                reply = await Send(HttpMethod.Put, $"{url}?digest={digest}", new ByteArrayContent(chunk));
                await ExpectBlobAsync(path, digest, exists: Succeeds && !foreign, "after finishing the session");
                if (foreign) await ExpectBlobAsync(sessionRepository, digest, exists: false, "after finishing the foreign session");
                break;
            case Endpoint.GetUpload or Endpoint.GetForeignSession:
                reply = await Send(HttpMethod.Get, url);
                break;
            default:
                reply = await Send(HttpMethod.Delete, url);
                break;
        }

        // A session the principal had no right to must be exactly as the writer left it: alive and empty.
        if (!ownSession)
        {
            var status = await fixture.SendAsync(HttpMethod.Get, $"v2/{sessionRepository}/blobs/uploads/{id}", await fixture.WriterTokenAsync(sessionRepository));
            if (status.Status != 204 || status.Header("Range") != "0-0")
                problems.Add($"the writer's session afterwards: {status.Summary}, Range '{status.Header("Range")}' (expected 204, 0-0: untouched)");
        }
        else if (endpoint == Endpoint.DeleteUpload && reply.Status == 204)
        {
            var status = await fixture.SendAsync(HttpMethod.Get, url, token);
            if (status.Status != 404) problems.Add($"the cancelled session still answers {status.Summary}");
        }
        return reply;
    }

    private async Task<(Reply Reply, string? ChallengeScope)> MountAsync(string name, MatrixImage image)
    {
        var (from, digest, content, targetNamespace) = endpoint switch
        {
            Endpoint.MountFromSameNamespace => (name, image.LayerDigest, image.Layer, name.Split('/')[0]),
            Endpoint.MountOtherTeamsLayer => (AuthorizationMatrix.OtherRepository, fixture.Other.LayerDigest, fixture.Other.Layer, "team-a"),
            Endpoint.MountFromRepositoryWithoutTheBlob => (AuthorizationMatrix.EmptyRepository, fixture.Other.LayerDigest, fixture.Other.Layer, "team-a"),
            Endpoint.MountOwnLayer => (AuthorizationMatrix.OwnRepository, fixture.Own.LayerDigest, fixture.Own.Layer, "team-a"),
            Endpoint.MountUpstreamLayer => (AuthorizationMatrix.UpstreamRepository, fixture.UpstreamImage.LayerDigest, fixture.UpstreamImage.Layer, "team-a"),
            Endpoint.MountLocalLayerThroughUpstreamRepository => (AuthorizationMatrix.UpstreamRepository, fixture.Other.LayerDigest, fixture.Other.Layer, "team-a"),
            _ => throw new ArgumentOutOfRangeException(nameof(endpoint)),
        };
        var target = fixture.Unique($"{targetNamespace}/mnt-");
        token = await fixture.TokenAsync(principal, $"repository:{target}:pull,push,delete", $"repository:{from}:pull");
        var reply = await Send(HttpMethod.Post, $"v2/{target}/blobs/uploads/?mount={digest}&from={from}");

        switch (reply.Status)
        {
            case 201:
            {
                var blob = await fixture.SendAsync(HttpMethod.Get, $"v2/{target}/blobs/{digest}", await fixture.WriterTokenAsync(target));
                if (blob.Status != 200 || !blob.Body.SequenceEqual(content)) problems.Add($"after the 201 mount, GET of the blob in {target}: {blob.Summary}");
                break;
            }
            case 202:
            {
                if (reply.Header("Location") is null) problems.Add("202 without a Location (no upload session)");
                // The principal's own view of the target: the blob must not be there.
                var blob = await fixture.SendAsync(HttpMethod.Get, $"v2/{target}/blobs/{digest}", token);
                if (blob.Status is not (404 or 401 or 403)) problems.Add($"after the 202 mount, GET of the blob in {target} by {principal}: {blob.Summary} (leak)");
                break;
            }
        }
        if (!Succeeds)
            await ExpectBlobAsync(target, digest, exists: false, "after the refused mount");
        else if (Status(expected) == 202)
            await ExpectBlobAsync(target, digest, exists: false, "after a mount that must not happen");
        return (reply, $"repository:{target}:pull,push");
    }

    private async Task<Reply> Send(HttpMethod method, string path, HttpContent? content = null, Action<HttpRequestMessage>? configure = null) =>
        await fixture.SendAsync(method, path, token, content, configure);

    private async Task ExpectManifestAsync(string repository, string reference, bool exists, string when)
    {
        var reply = await fixture.SendAsync(HttpMethod.Get, $"v2/{repository}/manifests/{reference}", await fixture.WriterTokenAsync(repository));
        if (exists && reply.Status != 200) problems.Add($"{when}: manifest {reference} in {repository} answers {reply.Summary}, expected 200");
        if (!exists && reply.Status != 404) problems.Add($"{when}: manifest {reference} in {repository} answers {reply.Summary}, expected 404");
    }

    private async Task ExpectBlobAsync(string repository, string digest, bool exists, string when)
    {
        var reply = await fixture.SendAsync(HttpMethod.Head, $"v2/{repository}/blobs/{digest}", await fixture.WriterTokenAsync(repository));
        if (exists && reply.Status != 200) problems.Add($"{when}: blob {digest[..19]}… in {repository} answers {reply.Status}, expected 200");
        if (!exists && reply.Status != 404) problems.Add($"{when}: blob {digest[..19]}… in {repository} answers {reply.Status}, expected 404");
    }
}
