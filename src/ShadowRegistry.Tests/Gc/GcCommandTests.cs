using ShadowRegistry.Cli;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Gc;

/// <summary>`ShadowRegistry gc [--dry-run]` against a filesystem store a registry is serving.</summary>
public sealed class GcCommandTests
{
    [Fact]
    public async Task DryRunPrintsWhatWouldGoAndTheRealRunRemovesIt()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        var (_, kept) = await client.PushImageAsync("app", "v1", seed: 1);
        // A blob stored three hours ago that nothing references (stored before collection existed: no use record, so
        // its file's time counts).
        var content = OciHttp.RandomBytes(777, 2);
        var digest = OciHttp.Sha256(content);
        var hex = digest["sha256:".Length..];
        var file = Path.Combine(server.StorageRoot, "blobs", "sha256", hex[..2], hex);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.WriteAllBytesAsync(file, content);
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddHours(-3));
        string[] options = ["--data", server.StorageRoot, "--Serilog:MinimumLevel:Default", "Warning"];

        var output = new StringWriter();
        Assert.Equal(0, await GcCommand.RunAsync(["--dry-run", .. options], output, TextWriter.Null, CancellationToken.None));
        Assert.Contains($"would remove blobs: {digest} (777 bytes)", output.ToString());
        Assert.Contains("would free 777 bytes", output.ToString());
        Assert.True(File.Exists(file));

        output = new StringWriter();
        Assert.Equal(0, await GcCommand.RunAsync(options, output, TextWriter.Null, CancellationToken.None));
        Assert.Contains("blobs: 1 removed (777 bytes)", output.ToString());
        Assert.False(File.Exists(file));
        await client.AssertWholeAsync("app", "v1");
        await client.AssertWholeAsync("app", kept);

        var error = new StringWriter();
        Assert.Equal(2, await GcCommand.RunAsync(["--data"], TextWriter.Null, error, CancellationToken.None));
        Assert.Contains("Usage: ShadowRegistry gc", error.ToString());
    }
}
