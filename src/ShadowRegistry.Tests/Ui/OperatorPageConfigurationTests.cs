using System.Net;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Ui;

/// <summary>The operator page's switches and headers, over plain HTTP (the browser tests cover the pages themselves).</summary>
public sealed class OperatorPageConfigurationTests
{
    [Fact]
    public async Task ThePageServesItsOwnAssetsUnderAStrictPolicyAndRefusesFormsWithoutAToken()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        using (var page = await client.GetAsync("ui/"))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            var policy = page.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("default-src 'none'", policy);
            Assert.Contains("script-src 'self'", policy);
            Assert.DoesNotContain("unsafe", policy);
            var html = await page.Content.ReadAsStringAsync();
            Assert.Contains("href=\"/ui/assets/site.css\"", html);
            Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", ""));
        }
        using (var css = await client.GetAsync("ui/assets/site.css"))
        {
            Assert.Equal(HttpStatusCode.OK, css.StatusCode);
            Assert.Equal("text/css", css.Content.Headers.ContentType?.MediaType);
        }
        using (var script = await client.GetAsync("ui/assets/ui.js")) Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        using (var missing = await client.GetAsync("ui/assets/other.js")) Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        // A change exists; a cross-site form (no antiforgery token) cannot delete it.
        using (var created = await client.PutAsync("api/v1/changes/keep-1", new StringContent("{}", System.Text.Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using (var forged = await client.PostAsync("ui/changes/keep-1/delete", new FormUrlEncodedContent([])))
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        using (var still = await client.GetAsync("api/v1/changes/keep-1")) Assert.Equal(HttpStatusCode.OK, still.StatusCode);
    }

    [Fact]
    public async Task ThePageMovesOrSwitchesOff()
    {
        await using (var moved = await RegistryServer.StartAsync("--Ui:Path", "/ops/registry"))
        {
            using var client = moved.CreateClient();
            using (var page = await client.GetAsync("ops/registry/health")) Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            using (var old = await client.GetAsync("ui/")) Assert.Equal(HttpStatusCode.NotFound, old.StatusCode);
        }
        await using (var off = await RegistryServer.StartAsync("--Ui:Enabled", "false"))
        {
            using var client = off.CreateClient();
            using (var page = await client.GetAsync("ui/")) Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
            using (var registry = await client.GetAsync("v2/")) Assert.Equal(HttpStatusCode.OK, registry.StatusCode);
        }
    }
}
