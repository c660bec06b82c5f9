namespace ShadowRegistry.Configuration;

/// <summary>Settings under the "Registry" configuration section.</summary>
public sealed class RegistryOptions
{
    public const string Section = "Registry";

    /// <summary>Folder holding blobs, upload sessions and repository metadata. Relative paths resolve against the working directory.</summary>
    public string StorageRoot { get; set; } = "data";

    /// <summary>Largest manifest accepted on PUT; the OCI spec asks registries to accept at least 4 MiB.</summary>
    public int MaxManifestBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Largest request body of any endpoint that is not a blob upload or a manifest PUT (those have their own rules:
    /// uploads stream to disk unbounded, manifests are bounded by <see cref="MaxManifestBytes"/>). Anything else that
    /// reads a body reads it into memory, so it is refused with 413 past this.
    /// </summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Default and largest page size for tag lists and the catalog.</summary>
    public int MaxPageSize { get; set; } = 10_000;

    /// <summary>Upload sessions idle this long are abandoned and removed.</summary>
    public TimeSpan UploadExpiry { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often abandoned uploads and crash debris are looked for (the first pass runs at start-up).</summary>
    public TimeSpan UploadCleanupInterval { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Temporary files (tmp/ and dot-temporaries beside metadata files) not written to for this long are debris of
    /// a killed process and are removed. A live writer touches its file far more often than this.
    /// </summary>
    public TimeSpan TemporaryFileExpiry { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How often the in-memory catalog is rebuilt from storage, which bounds how stale it can be about other processes' writes.</summary>
    public TimeSpan CatalogRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long this process trusts what it read about speculative changes (a change's record, which repositories its
    /// overlay holds) before reading it again: the bound on how late it sees changes made by other processes sharing
    /// the storage. Its own writes are seen at once.
    /// </summary>
    public TimeSpan ChangeCacheDuration { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The storage driver ("Registry:Storage").</summary>
    public StorageOptions Storage { get; set; } = new();

    /// <summary>Garbage collection ("Registry:Gc").</summary>
    public GcOptions Gc { get; set; } = new();
}

/// <summary>Settings under "Registry:Storage".</summary>
public sealed class StorageOptions
{
    public const string Filesystem = "filesystem";
    public const string InMemory = "inmemory";
    public const string Azure = "azure";
    public const string S3 = "s3";

    /// <summary>
    /// The driver everything is stored through: <see cref="Filesystem"/> (below StorageRoot), <see cref="S3"/> (a
    /// bucket, see <see cref="S3Bucket"/>), <see cref="Azure"/> (a Blob Storage container, see <see cref="AzureBlob"/>)
    /// or <see cref="InMemory"/> (lost on exit; for tests).
    /// </summary>
    public string Driver { get; set; } = Filesystem;

    /// <summary>"Registry:Storage:Azure", used when <see cref="Driver"/> is <see cref="Azure"/>.</summary>
    [Microsoft.Extensions.Configuration.ConfigurationKeyName("Azure")]
    public ShadowRegistry.Storage.Drivers.AzureBlobDriverOptions AzureBlob { get; set; } = new();

    /// <summary>"Registry:Storage:S3", used when <see cref="Driver"/> is <see cref="S3"/>.</summary>
    [Microsoft.Extensions.Configuration.ConfigurationKeyName("S3")]
    public ShadowRegistry.Storage.Drivers.S3DriverOptions S3Bucket { get; set; } = new();
}
