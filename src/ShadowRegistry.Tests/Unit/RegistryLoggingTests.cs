using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Serilog.Events;
using Serilog.Parsing;
using ShadowRegistry.Hosting;

namespace ShadowRegistry.Tests.Unit;

public sealed class RegistryLoggingTests
{
    private static readonly LogEvent Event = new(DateTimeOffset.Parse("2026-12-01T10:00:00Z"), LogEventLevel.Information, null,
        new MessageTemplateParser().Parse("Stored manifest {Digest} in {Repository}"),
        [new LogEventProperty("Digest", new ScalarValue("sha256:abc")), new LogEventProperty("Repository", new ScalarValue("team/app"))]);

    [Fact]
    public void JsonFormatWritesOneCompactJsonObjectPerEvent()
    {
        var output = new StringWriter();
        RegistryLogging.Formatter("json").Format(Event, output);
        var line = Assert.Single(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var json = JsonDocument.Parse(line);
        Assert.Equal("Stored manifest {Digest} in {Repository}", json.RootElement.GetProperty("@mt").GetString());
        Assert.Equal("team/app", json.RootElement.GetProperty("Repository").GetString());
        Assert.Equal("sha256:abc", json.RootElement.GetProperty("Digest").GetString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("text")]
    [InlineData("TEXT")]
    public void TextFormatIsTheDefault(string? format)
    {
        var output = new StringWriter();
        RegistryLogging.Formatter(format).Format(Event, output);
        Assert.StartsWith("[10:00:00 INF] Stored manifest sha256:abc in team/app", output.ToString().Replace(Event.Timestamp.ToLocalTime().ToString("HH:mm:ss"), "10:00:00"));
    }

    [Fact]
    public void AnUnknownFormatStopsTheRegistryWithTheReason()
    {
        var error = Assert.Throws<InvalidOperationException>(() => RegistryApp.Build(["--log-format", "xml"]));
        Assert.Contains("Registry:LogFormat must be 'text' or 'json'", error.Message);
    }

    [Fact]
    public void LevelsComeFromSerilogMinimumLevelWithConfiguredOverridesWinning()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Serilog:MinimumLevel:Default"] = "warning",
            ["Serilog:MinimumLevel:Override:Microsoft.AspNetCore"] = "Information",
        }).Build();
        using var logger = RegistryLogging.Configure(new Serilog.LoggerConfiguration(), configuration).CreateLogger();
        Assert.False(logger.IsEnabled(LogEventLevel.Information));
        Assert.True(logger.IsEnabled(LogEventLevel.Warning));
        Assert.True(logger.ForContext(Serilog.Core.Constants.SourceContextPropertyName, "Microsoft.AspNetCore.Hosting").IsEnabled(LogEventLevel.Information));
        Assert.False(logger.ForContext(Serilog.Core.Constants.SourceContextPropertyName, "System.Net.Http.HttpClient.x").IsEnabled(LogEventLevel.Information));
    }

    [Fact]
    public void AnUnknownLevelStopsTheRegistryWithTheReason()
    {
        var error = Assert.Throws<InvalidOperationException>(() => RegistryLogging.Configure(new Serilog.LoggerConfiguration(),
            new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Serilog:MinimumLevel:Default"] = "loud" }).Build()));
        Assert.Contains("Serilog:MinimumLevel:Default must be one of Verbose", error.Message);
    }
}
