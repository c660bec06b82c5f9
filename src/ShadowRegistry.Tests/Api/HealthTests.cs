using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>/healthz says the process is alive; /readyz says whether the storage can be written and read.</summary>
public sealed class HealthTests
{
    [TmpfsFact]
    public async Task ReadinessFollowsWhetherTheStorageIsWritable()
    {
        using var tmpfs = TmpfsMount.Create(8 * 1024 * 1024);
        await using var server = await RegistryServer.StartOnAsync(tmpfs.Path);
        using var client = server.CreateClient();

        await ExpectAsync(client, "readyz", HttpStatusCode.OK, "Healthy");

        tmpfs.SetReadOnly(true);
        try
        {
            await ExpectAsync(client, "readyz", HttpStatusCode.ServiceUnavailable, "Unhealthy");
            // Alive all the same: only readiness depends on the storage.
            await ExpectAsync(client, "healthz", HttpStatusCode.OK, "Healthy");
            using var request = new HttpRequestMessage(HttpMethod.Get, "readyz");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            using var detail = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, detail.StatusCode);
            using var json = JsonDocument.Parse(await detail.Content.ReadAsStringAsync());
            var storage = Assert.Single(json.RootElement.GetProperty("checks").EnumerateArray());
            Assert.Equal("storage", storage.GetProperty("name").GetString());
            Assert.Equal("Unhealthy", storage.GetProperty("status").GetString());
            Assert.Contains("not writable", storage.GetProperty("description").GetString());
        }
        finally
        {
            tmpfs.SetReadOnly(false);
        }

        await ExpectAsync(client, "readyz", HttpStatusCode.OK, "Healthy");
        // The probe leaves nothing behind.
        Assert.Empty(Directory.GetFiles(Path.Combine(tmpfs.Path, "health")));
    }

    [Fact]
    public async Task HealthEndpointsAreNeverBehindRegistryAuthentication()
    {
        await using var server = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false));
        using var client = server.CreateClient();
        await ExpectAsync(client, "healthz", HttpStatusCode.OK, "Healthy");
        await ExpectAsync(client, "readyz", HttpStatusCode.OK, "Healthy");
        using var registry = await client.GetAsync("v2/");
        Assert.Equal(HttpStatusCode.Unauthorized, registry.StatusCode);
    }

    private static async Task ExpectAsync(HttpClient client, string path, HttpStatusCode status, string body)
    {
        using var response = await client.GetAsync(path);
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
    }
}
