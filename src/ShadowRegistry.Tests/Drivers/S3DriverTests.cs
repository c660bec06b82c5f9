using Amazon.S3;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Drivers;

/// <summary>
/// s3rver, an S3 emulator, started once for the test run from .ci/emulators, where `npm ci` has patched it (see
/// .ci/emulators/patch-s3rver.js: copy-source decoding, conditional writes, atomic replacement).
/// </summary>
public static class S3rver
{
    public const string Binary = "s3rver";

    /// <summary>The emulator's fixed credentials.</summary>
    public const string AccessKey = "S3RVER";

    public const string SecretKey = "S3RVER";

    private static readonly Lazy<ObjectStoreEmulator> Emulator = new(() =>
    {
        var patched = Path.Combine(ObjectStoreEmulator.EmulatorsDirectory!, "node_modules", "s3rver", "lib", "controllers", "object.js");
        if (!File.ReadAllText(patched).Contains("shadowregistry patch", StringComparison.Ordinal))
            throw new InvalidOperationException($"s3rver is not patched: run `npm ci` in {ObjectStoreEmulator.EmulatorsDirectory} (its postinstall patches it)");
        return ObjectStoreEmulator.Start(Binary, (port, data) =>
            ["--address", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--directory", data, "--silent", "--no-vhost-buckets"],
            // s3rver's list continuation tokens use a cipher that Node 17+ only offers with the legacy provider.
            new Dictionary<string, string> { ["NODE_OPTIONS"] = "--openssl-legacy-provider" });
    });

    /// <summary>Options for a fresh bucket of its own on the emulator.</summary>
    public static S3DriverOptions NewBucket(int partSize)
    {
        ObjectStoreEmulator.SkipUnlessAvailable(Binary);
        return new S3DriverOptions
        {
            Bucket = $"test-{Guid.NewGuid():N}",
            Endpoint = Emulator.Value.Endpoint,
            ForcePathStyle = true,
            AccessKey = AccessKey,
            SecretKey = SecretKey,
            RootPrefix = "registry/root",
            CreateBucket = true,
            PartSize = partSize,
        };
    }

    public static S3Driver Driver(S3DriverOptions options)
    {
        var driver = new S3Driver(S3Driver.Client(options), options);
        driver.EnsureReadyAsync(CancellationToken.None).GetAwaiter().GetResult();
        return driver;
    }
}

/// <summary>The contract on the S3 driver against s3rver; "another process" is a second driver (and client) on the same bucket.</summary>
public sealed class S3DriverContractTests : StorageDriverContract
{
    // A small part size (the emulator does not hold parts to S3's 5 MiB minimum), so the contract's writes span
    // several parts and truncation cuts into uploaded ones. One bucket however many threads ask first (see Azure's).
    private readonly Lazy<S3DriverOptions> bucket = new(() => S3rver.NewBucket(64 * 1024));

    protected override IStorageDriver CreateDriver() => S3rver.Driver(bucket.Value);

    protected override IStorageDriver CreateDriverOnSameStore() => S3rver.Driver(bucket.Value);
}

/// <summary>What only the S3 driver offers: presigned download URLs, when configured.</summary>
public sealed class S3DriverTests
{
    [SkippableFact]
    public async Task PresignedRedirectsServeTheObjectWhenEnabled()
    {
        var options = S3rver.NewBucket(5 * 1024 * 1024);
        options.RedirectDownloads = true;
        var driver = S3rver.Driver(options);
        var content = System.Security.Cryptography.RandomNumberGenerator.GetBytes(10_000);
        await driver.PutContentAsync("/blobs/sha256/ab/abc/data", content, CancellationToken.None);

        using var http = new HttpClient();
        var get = (await driver.RedirectUrlAsync("/blobs/sha256/ab/abc/data", HttpMethod.Get, CancellationToken.None))!;
        Assert.Equal(content, await http.GetByteArrayAsync(get));
        var head = (await driver.RedirectUrlAsync("/blobs/sha256/ab/abc/data", HttpMethod.Head, CancellationToken.None))!;
        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, head));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(content.Length, response.Content.Headers.ContentLength);

        // Off by default: the registry serves the bytes itself.
        options.RedirectDownloads = false;
        Assert.Null(await S3rver.Driver(options).RedirectUrlAsync("/blobs/sha256/ab/abc/data", HttpMethod.Get, CancellationToken.None));
    }
}
