using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Ui;

/// <summary>
/// The operator page (/ui/) in a real browser: the queue drawn in order, a change's tags, resolving a name through its
/// view, promoting and deleting from the page, untrusted labels shown as text, login and roles with authentication on,
/// and an axe accessibility check of every page. One Chromium serves the class; each test starts its own registry.
/// </summary>
public sealed class OperatorPageTests(BrowserFixture fixture) : IClassFixture<BrowserFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [EndToEndFact(root: false, "chromium")]
    public async Task QueueChangeResolvePromoteAndDelete()
    {
        await using var server = await RegistryServer.StartAsync();
        using var api = server.CreateClient();
        var (_, baseDigest) = await api.PushImageAsync("app", "latest", seed: 1);
        await CreateAsync(api, "z100-1", [], new() { ["project"] = "app", ["pipeline"] = "gate" });
        await CreateAsync(api, "z101-1", ["z100-1"], new() { ["project"] = "app", ["pipeline"] = "gate" });
        await CreateAsync(api, "z102-1", ["z101-1", "z100-1"], new() { ["project"] = "app", ["pipeline"] = "gate" });
        await CreateAsync(api, "other-1", [], new() { ["project"] = "docs" });
        var (_, changeDigest) = await api.PushImageAsync("changes/z100-1/app", "latest", seed: 2);

        await using var context = await fixture.Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 800 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout((float)Patience.TotalMilliseconds);

        // The queue: every live change as a box, each after the changes it reads through.
        await page.GotoAsync(Url(server, "ui/?label=project%3Dapp"));
        Assert.Equal(["z100-1", "z101-1", "z102-1"], await ChangeBoxesAsync(page));
        var first = page.Locator("li.change[data-change='z100-1']");
        Assert.Equal("1", (await first.Locator(".tag-count").InnerTextAsync()).Trim());
        Assert.NotEqual("0 B", (await first.Locator(".unique").InnerTextAsync()).Trim());
        Assert.Equal(["z102-1", "z101-1", "z100-1", "base"], (await page.Locator("li.change[data-change='z102-1'] ol.stack li").AllInnerTextsAsync()).Select(t => t.Trim()));
        await page.Locator("time[data-expires]").First.WaitForAsync();
        // The README's picture of the queue. A test run leaves the checkout alone unless asked to refresh it
        // (SHADOWREGISTRY_UPDATE_SCREENSHOTS=1); otherwise the picture goes to the test output folder.
        var screenshots = Environment.GetEnvironmentVariable("SHADOWREGISTRY_UPDATE_SCREENSHOTS") == "1"
            ? Path.Combine(TestPaths.RepositoryRoot(), "docs", "images")
            : Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(screenshots);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(screenshots, "operator-queue.png"), FullPage = true });
        // Unfiltered: changes at the same place in their queues by age.
        await page.GotoAsync(Url(server, "ui/"));
        Assert.Equal(["z100-1", "other-1", "z101-1", "z102-1"], await ChangeBoxesAsync(page));

        // A change behind z100-1 resolves app:latest from z100-1's overlay, and says so.
        await page.ClickAsync("li.change[data-change='z102-1'] h2 a");
        await page.FillAsync("#name", "app:latest");
        await page.ClickAsync("form.resolve button");
        var resolution = page.Locator(".resolution");
        Assert.Contains("change/z100-1", await resolution.Locator(".layer").InnerTextAsync());
        Assert.Contains(changeDigest, await resolution.InnerTextAsync());
        Assert.Contains("/changes/z102-1/", await page.Locator("#snippet-podman").InnerTextAsync());

        // Promote z100-1, expecting the base's current digest (the form fills it in): the base tag moves.
        await page.GotoAsync(Url(server, "ui/changes/z100-1"));
        Assert.Equal(baseDigest, await page.InputValueAsync("#pe0"));
        await page.ClickAsync("form.promote button[type=submit]");
        Assert.Contains("Promoted 1 tag", await page.Locator("section.notice").InnerTextAsync());
        Assert.Equal(changeDigest, await BaseDigestAsync(api, "app", "latest"));
        await page.GotoAsync(Url(server, "ui/repository?name=app"));
        Assert.Equal(changeDigest, await page.Locator("table.tags code").First.GetAttributeAsync("title"));

        // A stale expectation is refused and changes nothing.
        await page.GotoAsync(Url(server, "ui/changes/z100-1"));
        await page.FillAsync("#pe0", baseDigest);
        await page.ClickAsync("form.promote button[type=submit]");
        Assert.Contains("refused", await page.Locator("section.error").InnerTextAsync());
        Assert.Equal(changeDigest, await BaseDigestAsync(api, "app", "latest"));

        // Delete it: gone from the queue, and the changes behind it skip it.
        await page.ClickAsync("details.danger summary");
        await page.ClickAsync("details.danger button[type=submit]");
        await page.WaitForURLAsync(url => url.Contains("deleted=z100-1", StringComparison.Ordinal));
        Assert.Equal(["z101-1", "other-1", "z102-1"], await ChangeBoxesAsync(page));
        Assert.Equal(["z101-1", "base"], (await page.Locator("li.change[data-change='z101-1'] ol.stack li").AllInnerTextsAsync()).Select(t => t.Trim()));
        using (var gone = await api.GetAsync("api/v1/changes/z100-1")) Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);

        // Health: the page draws its charts from the metrics.
        await page.GotoAsync(Url(server, "ui/health"));
        Assert.Equal(2, await page.Locator("figure.chart svg polyline").CountAsync());
    }

    [EndToEndFact(root: false, "chromium")]
    public async Task MarkupInLabelsAndTagsIsShownAsText()
    {
        await using var server = await RegistryServer.StartAsync();
        using var api = server.CreateClient();
        const string Script = "<img src=x onerror=alert(1)>";
        await CreateAsync(api, "evil-1", [], new() { ["title"] = Script, ["q\"><script>alert(2)</script>"] = "x" });
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        var dialogs = 0;
        page.Dialog += (_, dialog) =>
        {
            Interlocked.Increment(ref dialogs);
            _ = dialog.DismissAsync();
        };
        foreach (var path in new[] { "ui/", "ui/changes/evil-1", $"ui/changes/evil-1?name={Uri.EscapeDataString(Script)}" })
        {
            await page.GotoAsync(Url(server, path));
            Assert.Equal(0, await page.Locator("main img, main script").CountAsync());
        }
        await page.GotoAsync(Url(server, "ui/"));
        var labels = await page.Locator("li.change[data-change='evil-1'] a.label").AllInnerTextsAsync();
        Assert.Contains($"title={Script}", labels);
        Assert.Contains("q\"><script>alert(2)</script>=x", labels);
        Assert.Equal(0, dialogs);
    }

    [EndToEndFact(root: false, "chromium")]
    public async Task EveryPageHasNoSeriousAccessibilityViolations()
    {
        await using var server = await RegistryServer.StartAsync();
        using var api = server.CreateClient();
        await api.PushImageAsync("library/app", "1.0", seed: 3);
        await CreateAsync(api, "a11y-1", [], new() { ["project"] = "app" });
        await api.PushImageAsync("changes/a11y-1/library/app", "1.0", seed: 4);
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        foreach (var path in new[] { "ui/", "ui/changes/a11y-1?name=library/app:1.0", "ui/repository?name=library/app",
                     "ui/manifest?name=library/app&ref=1.0", "ui/health" })
        {
            await page.GotoAsync(Url(server, path));
            var result = await page.RunAxe();
            var serious = result.Violations.Where(v => v.Impact is "serious" or "critical")
                .Select(v => $"{path}: {v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Html))}").ToList();
            Assert.True(serious.Count == 0, string.Join("\n", serious));
        }
    }

    [EndToEndFact(root: false, "chromium")]
    public async Task WithAuthenticationVisitorsLogInAndReadersCannotAct()
    {
        await using var server = await RegistryServer.StartAsync(Args(anonymousPull: true));
        using var api = server.CreateClient();
        api.DefaultRequestHeaders.Authorization = Basic(Writer.Name, Writer.Password);
        await CreateAsync(api, "gated-1", [], new() { ["project"] = "app" });

        await using var anonymous = await fixture.Browser.NewContextAsync();
        var page = await anonymous.NewPageAsync();
        await page.GotoAsync(Url(server, "ui/changes/gated-1"));
        Assert.Contains("/ui/login", page.Url);
        Assert.Equal("Log in", (await page.Locator("h1").InnerTextAsync()).Trim());
        await page.FillAsync("#username", Reader.Name);
        await page.FillAsync("#password", "wrong");
        await page.ClickAsync("form.login button");
        Assert.Contains("wrong password", await page.Locator("p.error").InnerTextAsync());

        // The reader sees the change (back where it was going), with no action.
        await page.FillAsync("#username", Reader.Name);
        await page.FillAsync("#password", Reader.Password);
        await page.ClickAsync("form.login button");
        await page.WaitForURLAsync(url => url.EndsWith("/ui/changes/gated-1", StringComparison.Ordinal));
        Assert.Equal("Change gated-1", (await page.Locator("h1").InnerTextAsync()).Trim());
        Assert.Equal(0, await page.Locator("main form[method=post], main button[type=submit].danger, main button.primary").CountAsync());
        var cookies = await anonymous.CookiesAsync();
        var session = Assert.Single(cookies, c => c.Name == "ShadowRegistry.Ui.Session");
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);

        // A post without the page's antiforgery token is refused, even with the reader's (or anyone's) session cookie.
        using (var forged = new HttpClient { BaseAddress = server.BaseAddress })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "ui/changes/gated-1/delete") { Content = new FormUrlEncodedContent([]) };
            request.Headers.Add("Cookie", $"{session.Name}={session.Value}");
            using var response = await forged.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        // The writer gets the actions, and they work.
        await using var writerContext = await fixture.Browser.NewContextAsync();
        var writer = await writerContext.NewPageAsync();
        await writer.GotoAsync(Url(server, "ui/"));
        await writer.FillAsync("#username", Writer.Name);
        await writer.FillAsync("#password", Writer.Password);
        await writer.ClickAsync("form.login button");
        await writer.ClickAsync("li.change[data-change='gated-1'] h2 a");
        await writer.ClickAsync("details.danger summary");
        await writer.ClickAsync("details.danger button[type=submit]");
        await writer.WaitForURLAsync(url => url.Contains("deleted=gated-1", StringComparison.Ordinal));
        Assert.Empty(await ChangeBoxesAsync(writer));

        // Logging out ends the session.
        await writer.ClickAsync("form.user button");
        await writer.GotoAsync(Url(server, "ui/health"));
        Assert.Contains("/ui/login", writer.Url);
    }

    private static string Url(RegistryServer server, string path) => new Uri(server.BaseAddress, path).ToString();

    private static async Task<List<string>> ChangeBoxesAsync(IPage page) =>
        [.. (await page.Locator("ol.queue > li.change").EvaluateAllAsync<string[]>("boxes => boxes.map(b => b.dataset.change)"))];

    private static async Task CreateAsync(HttpClient api, string id, string[] ahead, Dictionary<string, string> labels)
    {
        using var response = await api.PutAsJsonAsync($"api/v1/changes/{id}", new { ahead, labels, ttl = "2h" });
        await response.ExpectAsync(HttpStatusCode.Created);
    }

    private static async Task<string?> BaseDigestAsync(HttpClient api, string repository, string tag)
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/manifests/{tag}");
        request.Headers.Accept.ParseAdd(OciHttp.OciManifest);
        using var response = await api.SendAsync(request);
        return response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.Single() : null;
    }
}
