using ShadowRegistry.Tests.Drivers;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// Registry command-line arguments for each storage driver a test runs a real server on, as an operator configures
/// them (Registry:Storage:*): the filesystem default, or a fresh bucket (s3rver) or container (Azurite) of its own.
/// </summary>
public static class ObjectStores
{
    public const string Filesystem = "filesystem";
    public const string S3 = "s3";
    public const string Azure = "azure";

    /// <summary>The object-store drivers, for theories.</summary>
    public static TheoryData<string> Drivers => [Azure, S3];

    /// <summary>The object-store drivers and the filesystem one, for theories.</summary>
    public static TheoryData<string> AllDrivers => [Filesystem, Azure, S3];

    /// <summary>
    /// Why the driver's emulator cannot run here, or null; a missing emulator fails under CI=true rather than skip.
    /// </summary>
    public static string? SkipReason(string driver)
    {
        var binary = driver switch
        {
            Azure => Azurite.Binary,
            S3 => S3rver.Binary,
            _ => null,
        };
        if (binary is null) return null;
        var reason = ObjectStoreEmulator.Unavailable(binary);
        if (reason is not null && Environment.GetEnvironmentVariable("CI") == "true") throw new InvalidOperationException($"CI=true but {reason}");
        return reason;
    }

    /// <summary>
    /// The arguments pointing a server at a new, empty store of the driver (call once per store: servers started on
    /// the same arguments share it). Skips the calling test when the emulator is missing.
    /// </summary>
    public static string[] Arguments(string driver)
    {
        if (SkipReason(driver) is { } reason) throw new SkipException(reason);
        switch (driver)
        {
            case Filesystem:
                return [];
            case Azure:
                return
                [
                    "--Registry:Storage:Driver", "azure", "--Registry:Storage:Azure:ConnectionString", Azurite.ConnectionString,
                    "--Registry:Storage:Azure:Container", $"registry-{Guid.NewGuid():N}", "--Registry:Storage:Azure:RootPrefix", "registry",
                    // Small blocks, so chunks and layers span several.
                    "--Registry:Storage:Azure:BlockSize", "65536",
                ];
            case S3:
                var bucket = S3rver.NewBucket(5 * 1024 * 1024);
                return
                [
                    "--Registry:Storage:Driver", "s3", "--Registry:Storage:S3:Bucket", bucket.Bucket, "--Registry:Storage:S3:Endpoint", bucket.Endpoint!,
                    "--Registry:Storage:S3:ForcePathStyle", "true", "--Registry:Storage:S3:AccessKey", S3rver.AccessKey,
                    "--Registry:Storage:S3:SecretKey", S3rver.SecretKey, "--Registry:Storage:S3:CreateBucket", "true",
                    "--Registry:Storage:S3:RootPrefix", "registry", "--Registry:Storage:S3:PartSize", "5242880",
                ];
            default:
                throw new ArgumentOutOfRangeException(nameof(driver), driver, "filesystem, azure or s3");
        }
    }
}
