using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Tests.Unit;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task ConcurrentReplacementsNeverExposeATornFile()
    {
        var path = Path.Combine(directory, "nested", "tag");
        var contents = Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)('a' + i), 64 * 1024).ToArray()).ToArray();
        await AtomicFile.WriteAllBytesAsync(path, contents[0]);

        using var stop = new CancellationTokenSource();
        var reads = 0;
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var bytes = await AtomicFile.TryReadAllBytesAsync(path);
                Assert.NotNull(bytes);
                Assert.Equal(64 * 1024, bytes.Length);
                Assert.All(bytes, b => Assert.Equal(bytes[0], b));
                reads++;
            }
        });
        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Task.Run(() => AtomicFile.WriteAllBytesAsync(path, contents[i % contents.Length]))));
        stop.Cancel();
        await reader;

        Assert.True(reads > 0);
        Assert.Equal(["tag"], Directory.EnumerateFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public async Task MissingFileReadsAsNull()
    {
        Assert.Null(await AtomicFile.TryReadAllBytesAsync(Path.Combine(directory, "absent", "file")));
        Assert.False(AtomicFile.TryDelete(Path.Combine(directory, "absent", "file")));
    }

    public void Dispose()
    {
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }
}
