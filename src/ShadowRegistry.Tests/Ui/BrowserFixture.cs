using Microsoft.Playwright;

namespace ShadowRegistry.Tests.Ui;

/// <summary>
/// One headless Debian Chromium for a whole test class, driven by Playwright with the system browser's path: nothing
/// is downloaded. The flags keep Chromium off the (closed) network: no background requests, no component updates.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? playwright;

    private IBrowser? browser;

    public IBrowser Browser => browser ?? throw new InvalidOperationException($"no browser: {ChromiumPath} is not installed (.ci/run installs Debian's chromium)");

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath)) return; // the tests say so themselves (EndToEndFact: skipped, or failed under CI)
        playwright = await Playwright.CreateAsync();
        browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"],
        });
    }

    public async Task DisposeAsync()
    {
        if (browser is not null) await browser.CloseAsync();
        playwright?.Dispose();
    }
}
