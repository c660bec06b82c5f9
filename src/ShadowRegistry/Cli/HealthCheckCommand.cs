using System.Net;
using ShadowRegistry.Hosting;

namespace ShadowRegistry.Cli;

/// <summary>
/// <c>ShadowRegistry healthcheck [options]</c>: asks the registry that the same configuration describes for
/// <c>/healthz</c> and exits 0 when it answers 200, else 1. The container image's HEALTHCHECK runs it, because the
/// runtime images have no curl or wget, and because it finds the listen address where the registry does (the
/// environment, appsettings.json, <c>--listen</c>), so the check follows a changed port by itself.
/// </summary>
public static class HealthCheckCommand
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static async Task<int> RunAsync(string[] args, TextWriter error)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: false)
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.Production.json"), optional: true, reloadOnChange: false)
            .AddEnvironmentVariables("ASPNETCORE_")
            .AddEnvironmentVariables()
            .AddCommandLine(args, RegistryApp.CommandLineSwitches())
            .Build();
        var listen = configuration["urls"] is { Length: > 0 } urls ? urls : RegistryApp.DefaultUrl;
        if (ProbeAddress(listen.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0]) is not { } probe)
        {
            error.WriteLine($"healthcheck: cannot make a URL to probe out of the listen address '{listen}'");
            return 1;
        }
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            // The probe talks to this very registry over loopback: it checks that the process answers, not who
            // signed its certificate (which names the registry's public host, not 127.0.0.1).
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        };
        using var client = new HttpClient(handler) { Timeout = Timeout };
        try
        {
            using var response = await client.GetAsync(probe);
            if (response.StatusCode == HttpStatusCode.OK) return 0;
            error.WriteLine($"healthcheck: {probe} answered {(int)response.StatusCode}");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            error.WriteLine($"healthcheck: {probe}: {e.Message}");
        }
        return 1;
    }

    /// <summary>
    /// <c>/healthz</c> on loopback at the port of a Kestrel listen address: a wildcard host (<c>0.0.0.0</c>, <c>[::]</c>,
    /// <c>*</c>, <c>+</c>) or a named one is reached through 127.0.0.1, which every such binding also serves.
    /// </summary>
    public static Uri? ProbeAddress(string listen)
    {
        // Kestrel's wildcard hosts are not valid URI hosts; any host stands in for them here.
        var parsable = listen.Replace("://*", "://any", StringComparison.Ordinal).Replace("://+", "://any", StringComparison.Ordinal);
        if (!Uri.TryCreate(parsable, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")) return null;
        // A specific address is the only one the registry serves; anything else (wildcards, names) covers loopback.
        var host = IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address) && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any)
            ? uri.Host
            : "127.0.0.1";
        return new UriBuilder(uri.Scheme, host, uri.Port, "/healthz").Uri;
    }
}
