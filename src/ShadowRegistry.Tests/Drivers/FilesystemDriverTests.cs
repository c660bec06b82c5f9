using System.Text;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>The contract on the filesystem driver; "another process" is a second driver on the same root folder.</summary>
public sealed class FilesystemDriverContractTests : StorageDriverContract
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));

    protected override IStorageDriver CreateDriver() => new FilesystemDriver(root);

    protected override IStorageDriver CreateDriverOnSameStore() => new FilesystemDriver(root);

    public override void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        base.Dispose();
    }
}

/// <summary>What only the filesystem driver promises: the files themselves, the lock files, a full disk.</summary>
public sealed class FilesystemDriverTests : IDisposable
{
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly string parent = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));
    private readonly string root;
    private readonly FilesystemDriver driver;

    public FilesystemDriverTests()
    {
        root = Path.Combine(parent, "root");
        driver = new FilesystemDriver(root, RegistryPaths.LockOf);
    }

    private static RepositoryName Name(string value) => RepositoryName.TryParse(value, out var name) ? name : throw new ArgumentException(value);

    [Fact]
    public async Task PathsAreTheFilesBelowTheRootAndLeaveNoTemporaries()
    {
        await driver.PutContentAsync("/repositories/app/_layers/sha256/abc", "link"u8.ToArray(), None);
        await driver.PutContentAsync("/repositories/app/_layers/sha256/abc", "link2"u8.ToArray(), None);
        Assert.Equal("link2", await File.ReadAllTextAsync(Path.Combine(root, "repositories", "app", "_layers", "sha256", "abc")));
        Assert.Equal(["abc"], Directory.EnumerateFileSystemEntries(Path.Combine(root, "repositories", "app", "_layers", "sha256")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task DotFilesAreNeverListedNorAddressable()
    {
        await driver.PutContentAsync("/folder/data", "x"u8.ToArray(), None);
        await File.WriteAllTextAsync(Path.Combine(root, "folder", $".{Guid.NewGuid():N}.tmp"), "debris");
        await File.WriteAllTextAsync(Path.Combine(root, "folder", ".data.lock"), "");
        Assert.Equal(["data"], await driver.ListAsync("/folder", None));
        await Assert.ThrowsAsync<InvalidPathException>(() => driver.GetContentAsync("/folder/.data.lock", None));
    }

    [Fact]
    public async Task InvalidPathsNeverReachOutsideTheRoot()
    {
        Directory.CreateDirectory(root);
        await File.WriteAllTextAsync(Path.Combine(parent, "outside"), "precious");
        foreach (var path in new[] { "/../outside", "/a/../../outside", "/..", "/./../outside" })
        {
            await Assert.ThrowsAsync<InvalidPathException>(() => driver.PutContentAsync(path, "overwritten"u8.ToArray(), None));
            await Assert.ThrowsAsync<InvalidPathException>(() => driver.DeleteAsync(path, None));
            await Assert.ThrowsAsync<InvalidPathException>(() => driver.GetContentAsync(path, None));
        }
        Assert.Equal("precious", await File.ReadAllTextAsync(Path.Combine(parent, "outside")));
        Assert.Equal(["outside", "root"], Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task TagsAreLockedWhereEveryVersionOfTheRegistryLocksThem()
    {
        var tag = RegistryPaths.Tag(Name("team/app"), "latest");
        Assert.Equal("/repositories/team/app/_manifests/locks/latest", RegistryPaths.LockOf(tag));
        await driver.PutContentAsync(tag, "sha256:a"u8.ToArray(), None);
        var version = (await driver.GetVersionedAsync(tag, None))!.Version;

        // Another process (an older registry, which takes this very file) holds the tag's lock: the conditional
        // delete must wait for it, however long, and then decide on what the tag holds by then.
        var lockFile = Path.Combine(root, "repositories", "team", "app", "_manifests", "locks", "latest");
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        var held = await FileLock.AcquireAsync(lockFile, None);
        var delete = driver.DeleteIfVersionMatchesAsync(tag, version, None);
        await Task.Delay(300);
        Assert.False(delete.IsCompleted, "the compare-and-delete went ahead while another process held the tag's lock");
        await File.WriteAllTextAsync(Path.Combine(root, "repositories", "team", "app", "_manifests", "tags", "latest"), "sha256:b");
        await held.DisposeAsync();
        Assert.False(await delete);
        Assert.Equal("sha256:b"u8.ToArray(), await driver.GetContentAsync(tag, None));

        // No lock file ever shows up among the tags.
        Assert.Equal(["latest"], await driver.ListAsync(RegistryPaths.TagsDirectory(Name("team/app")), None));
    }

    [Fact]
    public async Task OtherPathsGetALockFileBesideThem()
    {
        Assert.Null(RegistryPaths.LockOf("/repositories/team/app/_layers/sha256/abc"));
        Assert.Null(RegistryPaths.LockOf("/elsewhere/_manifests/tags/x"));
        Assert.True(await driver.PutIfAbsentAsync("/state/gc", "idle"u8.ToArray(), None));
        Assert.True(File.Exists(Path.Combine(root, "state", ".gc.lock")));
        Assert.Equal(["gc"], await driver.ListAsync("/state", None));
    }

    [TmpfsFact]
    public async Task AFullDiskIsStorageFullAndLeavesTheOldContent()
    {
        using var tmpfs = TmpfsMount.Create(1024 * 1024);
        var full = new FilesystemDriver(tmpfs.Path);
        await full.PutContentAsync("/meta/record", "old"u8.ToArray(), None);
        tmpfs.Fill("filler");

        var put = await Assert.ThrowsAsync<OutOfSpaceException>(() => full.PutContentAsync("/meta/record", new byte[64 * 1024], None));
        Assert.StartsWith("filesystem: storage is full: /meta/record", put.Message);
        // The API maps it to 507 as it did the raw I/O error.
        Assert.True(ShadowRegistry.Domain.StorageFullException.IsCause(put));
        Assert.Equal("old"u8.ToArray(), await full.GetContentAsync("/meta/record", None));
        Assert.Equal(["record"], await full.ListAsync("/meta", None));

        await using var writer = await full.WriterAsync("/meta/upload", append: false, None);
        await Assert.ThrowsAsync<OutOfSpaceException>(() => writer.WriteAsync(new byte[256 * 1024], None));
    }

    public void Dispose()
    {
        if (Directory.Exists(parent)) Directory.Delete(parent, recursive: true);
    }
}
