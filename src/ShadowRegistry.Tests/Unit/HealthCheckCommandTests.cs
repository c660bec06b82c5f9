using ShadowRegistry.Cli;

namespace ShadowRegistry.Tests.Unit;

public sealed class HealthCheckCommandTests
{
    [Theory]
    [InlineData("http://0.0.0.0:5000", "http://127.0.0.1:5000/healthz")]
    [InlineData("http://*:5001", "http://127.0.0.1:5001/healthz")]
    [InlineData("http://+:5002", "http://127.0.0.1:5002/healthz")]
    [InlineData("http://[::]:5003", "http://127.0.0.1:5003/healthz")]
    [InlineData("http://localhost:5004", "http://127.0.0.1:5004/healthz")]
    [InlineData("http://127.0.0.1:5005", "http://127.0.0.1:5005/healthz")]
    [InlineData("https://10.1.2.3:5443/", "https://10.1.2.3:5443/healthz")]
    [InlineData("http://[::1]:5006", "http://[::1]:5006/healthz")]
    public void ProbesHealthzWhereTheListenAddressServesLoopback(string listen, string probe) =>
        Assert.Equal(new Uri(probe), HealthCheckCommand.ProbeAddress(listen));

    [Theory]
    [InlineData("unix:/tmp/registry.sock")]
    [InlineData("not a url")]
    public void AnAddressItCannotProbeIsNoUrl(string listen) => Assert.Null(HealthCheckCommand.ProbeAddress(listen));

    [Fact]
    public async Task ExitsOneWhenNothingAnswers()
    {
        var port = Infrastructure.FakeUpstream.FreePort();
        var error = new StringWriter();
        Assert.Equal(1, await HealthCheckCommand.RunAsync(["--listen", $"http://127.0.0.1:{port}"], error));
        Assert.Contains($"http://127.0.0.1:{port}/healthz", error.ToString());
    }

    [Fact]
    public async Task ExitsZeroWhenTheRegistryAnswers()
    {
        await using var server = await Infrastructure.RegistryServer.StartAsync();
        var error = new StringWriter();
        Assert.Equal(0, await HealthCheckCommand.RunAsync(["--listen", $"http://{server.HostPort}"], error));
    }
}
