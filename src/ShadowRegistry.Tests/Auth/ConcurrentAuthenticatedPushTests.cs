using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ShadowRegistry.Auth;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>
/// The CI case the issue is about: many gate jobs at once pushing the first image of a repository that does not
/// exist yet, each logging in (token request), uploading and putting its manifest.
/// </summary>
public sealed class ConcurrentAuthenticatedPushTests
{
    [Fact]
    public async Task HundredConcurrentFirstPushesByAWriterToOneNewRepositoryAllSucceed()
    {
        const int Jobs = 100;
        const string Repository = "brand-new/first-push";
        // Restricted mode (the stricter one), and a full-strength password hash: the burst of logins shares one check.
        var gate = new TestUser("gate-job", "gate-job-password", AuthRoles.Write);
        string[] args =
        [
            "--Auth:Enabled", "true", "--Auth:AnonymousPull", "false", "--Auth:SigningKey:Secret", Secret,
            "--Auth:Users:0:Name", gate.Name, "--Auth:Users:0:PasswordHash", PasswordHash.Hash(gate.Password), "--Auth:Users:0:Role", gate.Role,
        ];
        await using var server = await RegistryServer.StartAsync(args);
        using var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(1) };
        var gateOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var jobs = Enumerable.Range(0, Jobs).Select(i => Task.Run(async () =>
        {
            using var client = new HttpClient(handler, disposeHandler: false) { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(1) };
            await gateOpen.Task.WaitAsync(TimeSpan.FromSeconds(30));

            using var tokenRequest = new HttpRequestMessage(HttpMethod.Get, $"auth/token?service={Service}&scope=repository:{Repository}:pull,push");
            tokenRequest.Headers.Authorization = Basic(gate.Name, gate.Password);
            using var tokenResponse = await client.SendAsync(tokenRequest);
            await tokenResponse.ExpectAsync(HttpStatusCode.OK);
            using var body = JsonDocument.Parse(await tokenResponse.Content.ReadAsStringAsync());
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", body.RootElement.GetProperty("token").GetString());

            // Shared layers for everyone (same seed), a tag of its own: all race on the new repository's first records.
            var (_, digest) = await client.PushImageAsync(Repository, $"job-{i}", seed: 99);
            using var get = await client.GetAsync($"v2/{Repository}/manifests/job-{i}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(digest, get.Headers.GetValues("Docker-Content-Digest").Single());
        })).ToArray();
        gateOpen.SetResult();
        var all = Task.WhenAll(jobs);
        var finished = await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(90)));
        Assert.True(finished == all, "the concurrent pushes did not finish within 90 s");
        await all;

        using var reader = new HttpClient(handler, disposeHandler: false) { BaseAddress = server.BaseAddress };
        using var tokenForList = new HttpRequestMessage(HttpMethod.Get, $"auth/token?scope=repository:{Repository}:pull");
        tokenForList.Headers.Authorization = Basic(gate.Name, gate.Password);
        using var listToken = await reader.SendAsync(tokenForList);
        using var listBody = JsonDocument.Parse(await listToken.Content.ReadAsStringAsync());
        reader.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", listBody.RootElement.GetProperty("token").GetString());
        using var tags = await reader.GetAsync($"v2/{Repository}/tags/list?n={Jobs * 2}");
        await tags.ExpectAsync(HttpStatusCode.OK);
        using var tagList = JsonDocument.Parse(await tags.Content.ReadAsStringAsync());
        Assert.Equal(Jobs, tagList.RootElement.GetProperty("tags").GetArrayLength());
    }
}
