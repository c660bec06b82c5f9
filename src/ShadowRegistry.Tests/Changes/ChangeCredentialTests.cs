using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Changes;

/// <summary>
/// A change created with {"credential": true} hands its job a credential that pushes and pulls through that change's
/// view and nothing else: not the base, not another change, not the management API; and only while the change lives.
/// </summary>
public sealed class ChangeCredentialTests
{
    [Fact]
    public async Task AChangeCredentialReachesItsOwnViewOnly()
    {
        await using var server = await RegistryServer.StartAsync(Args(anonymousPull: false));
        using var admin = server.CreateClient();
        admin.DefaultRequestHeaders.Authorization = Basic(Writer.Name, Writer.Password);
        using (var other = await admin.PutAsJsonAsync("api/v1/changes/other", new { })) await other.ExpectAsync(HttpStatusCode.Created);
        using var created = await admin.PutAsJsonAsync("api/v1/changes/job1", new { credential = true });
        await created.ExpectAsync(HttpStatusCode.Created);
        Assert.Equal("no-store", created.Headers.CacheControl?.ToString());
        var credential = (await created.Content.ReadFromJsonAsync<JsonObject>())!["credential"]!;
        var (user, secret) = (credential["username"]!.GetValue<string>(), credential["password"]!.GetValue<string>());
        Assert.Equal("change/job1", user);
        // Shown once: the description does not repeat it.
        Assert.Null((await admin.GetFromJsonAsync<JsonObject>("api/v1/changes/job1"))!["credential"]);

        using var anonymous = server.CreateClient();
        // The token grants the view, and nothing of what else was asked for.
        var token = await TokenFor(anonymous, user, secret, "repository:changes/job1/app:pull,push", "repository:app:pull,push",
            "repository:changes/other/app:pull,push");
        using (var job = WithToken(server, token))
        {
            await job.PushImageAsync("changes/job1/app", "latest", seed: 1);
            using (var toBase = await job.PostAsync("v2/app/blobs/uploads/", null)) Assert.Equal(HttpStatusCode.Forbidden, toBase.StatusCode);
            using (var toOther = await job.PostAsync("v2/changes/other/app/blobs/uploads/", null)) Assert.Equal(HttpStatusCode.Forbidden, toOther.StatusCode);
        }

        // Not the management API: a job must not promote or delete changes.
        using var jobAdmin = server.CreateClient();
        jobAdmin.DefaultRequestHeaders.Authorization = Basic(user, secret);
        using (var promote = await jobAdmin.PostAsync("api/v1/changes/job1/promote", null)) await promote.ExpectErrorAsync(HttpStatusCode.Forbidden, "DENIED");
        using (var wrong = await RequestTokenAsync(anonymous, user, secret + "x", "repository:changes/job1/app:pull")) Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);

        // Gone with its change.
        using (var deleted = await admin.DeleteAsync("api/v1/changes/job1")) await deleted.ExpectAsync(HttpStatusCode.NoContent);
        using (var after = await RequestTokenAsync(anonymous, user, secret, "repository:changes/job1/app:pull")) Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
    }

    [Fact]
    public async Task ConfiguredUsersCannotTakeTheNameOfAChangeCredential()
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => RegistryServer.StartAsync(
            "--Auth:Users:0:Name", "change/x", "--Auth:Users:0:PasswordHash", ShadowRegistry.Auth.PasswordHash.Hash("p"), "--Auth:Users:0:Role", "write"));
        Assert.Contains("speculative changes", failure.ToString());
    }

    private static async Task<string> TokenFor(HttpClient client, string user, string secret, params string[] scopes)
    {
        using var response = await RequestTokenAsync(client, user, secret, scopes);
        await response.ExpectAsync(HttpStatusCode.OK);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
    }
}
