using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Unit;

/// <summary>The janitor on a fake clock: which files are old enough is decided by the injected TimeProvider alone.</summary>
public sealed class StorageJanitorTests : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(15);

    private readonly string root = Path.Combine(Path.GetTempPath(), "shadowregistry-tests", Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider clock = new(DateTimeOffset.UtcNow);
    private readonly RegistryOptions settings;
    private readonly UploadHashStates hashStates = new();
    private readonly RegistryMetrics metrics = new();
    private readonly UploadStore uploads;
    private readonly CrashDebris debris;

    public StorageJanitorTests()
    {
        settings = new RegistryOptions { StorageRoot = root, UploadCleanupInterval = Interval };
        var driver = new ShadowRegistry.Storage.Drivers.FilesystemDriver(root);
        uploads = new UploadStore(driver, new BlobStore(driver, new BlobTouches(driver, Options.Create(settings), clock), metrics, NullLogger<BlobStore>.Instance), hashStates, clock, metrics, NullLogger<UploadStore>.Instance);
        debris = new CrashDebris(driver, clock, NullLogger<CrashDebris>.Instance);
    }

    /// <summary>A file last written <paramref name="age"/> before the fake clock's now.</summary>
    private string File(string relativePath, TimeSpan age)
    {
        var path = Path.Combine(root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllBytes(path, [1]);
        System.IO.File.SetLastWriteTimeUtc(path, (clock.GetUtcNow() - age).UtcDateTime);
        return path;
    }

    private static string Temporary() => $".{Guid.NewGuid():N}.tmp";

    [Fact]
    public async Task SweepRemovesTemporariesOlderThanTheExpiryOnly()
    {
        var expiry = TimeSpan.FromHours(1);
        var almost = expiry - TimeSpan.FromMinutes(1);
        var past = expiry + TimeSpan.FromMinutes(1);
        var oldTag = File($"repositories/a/b/_manifests/tags/{Temporary()}", past);
        var oldRevision = File($"repositories/a/b/_manifests/revisions/sha256/{Temporary()}", past);
        var oldTemp = File($"tmp/{Guid.NewGuid():N}", past);
        var youngTag = File($"repositories/a/b/_manifests/tags/{Temporary()}", almost);
        var youngTemp = File($"tmp/{Guid.NewGuid():N}", almost);
        string[] neverRemoved =
        [
            File("repositories/a/b/_manifests/tags/.v1.lock", TimeSpan.FromDays(30)),
            File("repositories/a/b/_manifests/tags/v1", TimeSpan.FromDays(30)),
            File($"repositories/a/b/_manifests/tags/.{Guid.NewGuid():N}.tmp.lock", TimeSpan.FromDays(30)),
            File($"repositories/a/b/_layers/sha256/.{Guid.NewGuid():N}.TMP", TimeSpan.FromDays(30)),
            File($"uploads/{Guid.NewGuid():N}/{Temporary()}", TimeSpan.FromDays(30)), // the upload janitor's, whole sessions at a time
        ];

        Assert.Equal(3, await debris.SweepAsync(expiry, CancellationToken.None));
        Assert.All(new[] { oldTag, oldRevision, oldTemp }, path => Assert.False(System.IO.File.Exists(path), path));
        Assert.All(new[] { youngTag, youngTemp }.Concat(neverRemoved), path => Assert.True(System.IO.File.Exists(path), path));
        Assert.True(Directory.Exists(Path.Combine(root, "repositories/a/b/_manifests/revisions/sha256")), "folders are left alone");

        // Only the fake clock moves: the young ones now count as old.
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(2, await debris.SweepAsync(expiry, CancellationToken.None));
        Assert.False(System.IO.File.Exists(youngTag));
        Assert.False(System.IO.File.Exists(youngTemp));
        Assert.All(neverRemoved, path => Assert.True(System.IO.File.Exists(path), path));
    }

    [Fact]
    public async Task JanitorCleansAtStartAndThenEveryInterval()
    {
        RepositoryName.TryParse("janitor/app", out var repository);
        var session = await uploads.StartAsync(repository, CancellationToken.None);
        var atStart = File($"repositories/janitor/app/_manifests/tags/{Temporary()}", settings.TemporaryFileExpiry + TimeSpan.FromSeconds(1));
        var later = File($"repositories/janitor/app/_manifests/tags/{Temporary()}", TimeSpan.Zero);

        using var janitor = new StorageJanitor(uploads, debris, Options.Create(settings), clock, NullLogger<StorageJanitor>.Instance);
        await janitor.StartAsync(CancellationToken.None);
        Assert.False(System.IO.File.Exists(atStart));
        Assert.True(System.IO.File.Exists(later));
        Assert.True(Directory.Exists(Path.Join(root, session.Directory)));

        // Ticks before the temporary's expiry leave it; the first tick at it removes it. The session's expiry is longer.
        clock.Advance(settings.TemporaryFileExpiry - Interval);
        Assert.True(System.IO.File.Exists(later));
        clock.Advance(Interval);
        Assert.False(System.IO.File.Exists(later));
        Assert.True(Directory.Exists(Path.Join(root, session.Directory)));

        clock.Advance(settings.UploadExpiry);
        Assert.False(Directory.Exists(Path.Join(root, session.Directory)));
        await janitor.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task TheInFlightGaugeFollowsSessionsPurgedHereOrEndedElsewhere()
    {
        RepositoryName.TryParse("janitor/app", out var repository);
        var abandoned = await uploads.StartAsync(repository, CancellationToken.None);
        var endedElsewhere = await uploads.StartAsync(repository, CancellationToken.None);
        var cancelled = await uploads.StartAsync(repository, CancellationToken.None);
        await uploads.StartAsync(repository, CancellationToken.None);
        Assert.Equal(4, (await MetricsScrape.Of(metrics)).Value("shadowregistry_upload_sessions_in_flight"));

        await uploads.CancelAsync(cancelled);
        Assert.Equal(3, (await MetricsScrape.Of(metrics)).Value("shadowregistry_upload_sessions_in_flight"));

        var expiry = TimeSpan.FromHours(1);
        System.IO.File.SetLastWriteTimeUtc(Path.Join(root, abandoned.DataPath), (clock.GetUtcNow() - expiry - TimeSpan.FromMinutes(1)).UtcDateTime);
        // Another process sharing the store finished this one: this process only learns it from the store.
        Directory.Delete(Path.Join(root, endedElsewhere.Directory), recursive: true);
        Assert.Equal(1, await uploads.PurgeAbandonedAsync(expiry, CancellationToken.None));
        Assert.Equal(1, (await MetricsScrape.Of(metrics)).Value("shadowregistry_upload_sessions_in_flight"));
    }

    public void Dispose()
    {
        hashStates.Dispose();
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
