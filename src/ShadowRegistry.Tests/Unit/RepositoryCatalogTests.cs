using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Tests.Unit;

/// <summary>The catalog index on a fake clock: what it serves between rebuilds, and what a rebuild changes.</summary>
public sealed class RepositoryCatalogTests : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    private readonly string root = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider clock = new();
    private readonly RepositoryCatalog catalog;

    public RepositoryCatalogTests()
    {
        var options = Options.Create(new RegistryOptions { StorageRoot = root, CatalogRefreshInterval = Interval });
        catalog = new RepositoryCatalog(new FilesystemDriver(root, RegistryPaths.LockOf), options, clock, NullLogger<RepositoryCatalog>.Instance);
    }

    private static RepositoryName Name(string value) => RepositoryName.TryParse(value, out var name) ? name : throw new ArgumentException(value);

    /// <summary>Writes a manifest revision, as a push (of this or another process) does; returns its path.</summary>
    private string Revision(string repository, int seed = 0)
    {
        var path = Path.Join(root, RegistryPaths.ManifestRevision(Name(repository), Digest.Compute(Digest.Sha256, BitConverter.GetBytes(seed))));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "{}");
        return path;
    }

    private async Task<List<string>> ListAsync() => [.. await catalog.ListAsync(CancellationToken.None)];

    [Fact]
    public async Task OtherProcessesWritesShowAtTheNextRebuild()
    {
        var first = Revision("other/a");
        Assert.Equal(["other/a"], await ListAsync());

        // Written behind this process's back: the index does not walk the storage per request.
        Revision("other/b");
        File.Delete(first);
        Assert.Equal(["other/a"], await ListAsync());
        clock.Advance(Interval - TimeSpan.FromSeconds(1));
        Assert.Equal(["other/a"], await ListAsync());

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["other/b"], await ListAsync());
    }

    [Fact]
    public async Task OwnPushesAndDeletesShowAtOnce()
    {
        Revision("own/a");
        Assert.Equal(["own/a"], await ListAsync());

        var revision = Revision("own/b");
        await catalog.AddedAsync(Name("own/b"));
        Assert.Equal(["own/a", "own/b"], await ListAsync());

        // A delete that leaves a tag or another revision keeps the repository; the last one removes it.
        var second = Revision("own/b", seed: 1);
        File.Delete(revision);
        await catalog.RemovedAsync(Name("own/b"));
        Assert.Equal(["own/a", "own/b"], await ListAsync());
        File.Delete(second);
        await catalog.RemovedAsync(Name("own/b"));
        Assert.Equal(["own/a"], await ListAsync());
    }

    [Fact]
    public async Task PushesDuringARebuildAreNotLost()
    {
        for (var i = 0; i < 500; i++) Revision($"busy/old{i}");
        Assert.Equal(500, (await ListAsync()).Count);

        // Rebuilds walk the storage while pushes land: a rebuild must not swap in a walk that missed one.
        using var stop = new CancellationTokenSource();
        var rebuilds = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested) await catalog.RefreshAsync();
        });
        var pushed = Enumerable.Range(0, 300).Select(i => $"busy/new{i}").ToList();
        await Parallel.ForEachAsync(pushed, async (name, _) =>
        {
            Revision(name);
            await catalog.AddedAsync(Name(name));
        });
        stop.Cancel();
        await rebuilds;

        var listed = await ListAsync();
        Assert.All(pushed, name => Assert.Contains(name, listed));
        Assert.Equal(800, listed.Count);
    }

    public void Dispose()
    {
        catalog.Dispose();
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
