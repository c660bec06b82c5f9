using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>The contract on the in-memory driver; "another process" is a second driver on the same store.</summary>
public sealed class InMemoryDriverContractTests : StorageDriverContract
{
    private readonly InMemoryStore store = new();

    protected override IStorageDriver CreateDriver() => new InMemoryDriver(store);

    protected override IStorageDriver CreateDriverOnSameStore() => new InMemoryDriver(store);
}

/// <summary>What only the in-memory driver promises: like an object store, nothing being written is visible before its commit.</summary>
public sealed class InMemoryDriverTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task UncommittedWritesAreInvisible()
    {
        var driver = new InMemoryDriver();
        await driver.PutContentAsync("/file", "committed"u8.ToArray(), None);
        await using var writer = await driver.WriterAsync("/file", append: false, None);
        await writer.WriteAsync("pending"u8.ToArray(), None);
        Assert.Equal("committed"u8.ToArray(), await driver.GetContentAsync("/file", None));
        await Assert.ThrowsAsync<PathNotFoundException>(() => driver.MoveAsync("/other", "/x", None));
        await writer.CommitAsync(None);
        Assert.Equal("pending"u8.ToArray(), await driver.GetContentAsync("/file", None));
    }

    [Fact]
    public async Task DriversOnDifferentStoresShareNothing()
    {
        var one = new InMemoryDriver();
        var other = new InMemoryDriver();
        await one.PutContentAsync("/file", "x"u8.ToArray(), None);
        await Assert.ThrowsAsync<PathNotFoundException>(() => other.GetContentAsync("/file", None));
    }
}
