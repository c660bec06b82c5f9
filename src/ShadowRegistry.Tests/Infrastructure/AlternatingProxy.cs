using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A forwarding proxy on a free loopback port that sends each request to the other replica than the request before
/// it (a strict round-robin, upload chunks included), streaming bodies both ways through YARP's forwarder. One
/// proxy per client, so every client's own requests alternate, whatever the other clients do.
/// </summary>
public sealed class AlternatingProxy : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly HttpMessageInvoker invoker;
    private readonly string[] replicas;
    private long next = -1;
    private readonly long[] forwarded;

    private AlternatingProxy(WebApplication app, HttpMessageInvoker invoker, string[] replicas)
    {
        this.app = app;
        this.invoker = invoker;
        this.replicas = replicas;
        forwarded = new long[replicas.Length];
    }

    /// <summary>127.0.0.1:PORT, as container tools name a registry.</summary>
    public string HostPort { get; private set; } = "";

    public Uri BaseAddress => new($"http://{HostPort}/");

    /// <summary>How many requests went to each replica, in the order given.</summary>
    public IReadOnlyList<long> Forwarded => [.. forwarded];

    public static async Task<AlternatingProxy> StartAsync(params Uri[] replicas)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddHttpForwarder();
        var app = builder.Build();
        var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
        });
        var proxy = new AlternatingProxy(app, invoker, [.. replicas.Select(r => r.ToString().TrimEnd('/'))]);
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        app.Run(async context =>
        {
            var turn = (int)(Interlocked.Increment(ref proxy.next) % proxy.replicas.Length);
            Interlocked.Increment(ref proxy.forwarded[turn]);
            var error = await forwarder.SendAsync(context, proxy.replicas[turn], invoker, ForwarderRequestConfig.Empty, HttpTransformer.Default);
            // A replica gone mid-request (killed) is what a load balancer answers with 502.
            if (error != ForwarderError.None && !context.Response.HasStarted) context.Response.StatusCode = StatusCodes.Status502BadGateway;
        });
        await app.StartAsync();
        proxy.HostPort = new Uri(app.Urls.First()).Authority;
        return proxy;
    }

    public HttpClient CreateClient() => new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
    {
        BaseAddress = BaseAddress,
        Timeout = TimeSpan.FromMinutes(2),
    };

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        invoker.Dispose();
    }
}
