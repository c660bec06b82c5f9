using System.Globalization;
using System.Security.Cryptography;
using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace ShadowRegistry.Storage.Drivers;

/// <summary>Where and how the Azure Blob driver reaches its container ("Registry:Storage:Azure").</summary>
public sealed class AzureBlobDriverOptions
{
    /// <summary>A storage connection string (account key or SAS); takes precedence over the settings below.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The account, with <see cref="AccountKey"/> or <see cref="SasToken"/> when there is no connection string.</summary>
    public string? AccountName { get; set; }

    public string? AccountKey { get; set; }

    /// <summary>A SAS token (with or without the leading '?') granting read, write, delete, list on the container.</summary>
    public string? SasToken { get; set; }

    /// <summary>The blob service endpoint; https://{AccountName}.blob.core.windows.net when not set.</summary>
    public string? ServiceUri { get; set; }

    public string Container { get; set; } = "registry";

    /// <summary>A prefix every key starts with ("registry/v1"), so several registries can share a container; empty for none.</summary>
    public string RootPrefix { get; set; } = "";

    /// <summary>Creates the container at start-up when it does not exist (needs account-level rights).</summary>
    public bool CreateContainer { get; set; } = true;

    /// <summary>How many bytes a writer gathers before it stages them as one block (at most 50,000 blocks per blob).</summary>
    public int BlockSize { get; set; } = 8 * 1024 * 1024;

    /// <summary>
    /// How long a writer's lease on its blob lasts without renewal (Azure allows 15 to 60 s): the longest a replica
    /// that dies mid-chunk keeps that upload session from going on elsewhere.
    /// </summary>
    public TimeSpan WriterLease { get; set; } = AzureBlobDriver.MaxLease;

    /// <summary>
    /// Blob GET/HEAD redirect clients to the blob's URL with a read-only SAS for that one blob (off: the registry serves
    /// the bytes). The SAS is signed with the account key, so this needs the key, not a SAS.
    /// </summary>
    public bool RedirectDownloads { get; set; }

    /// <summary>How long a download SAS stays valid.</summary>
    public TimeSpan RedirectExpiry { get; set; } = TimeSpan.FromMinutes(20);
}

/// <summary>
/// Driver paths as block blobs in one container, keyed "{RootPrefix}/{path without its leading slash}".
/// <list type="bullet">
/// <item>PutContent is one Put Blob of the whole content: atomic (readers see the old blob or the new one), never the
/// delete-then-append that lost data in CNCF distribution's azure driver.</item>
/// <item>Conditional operations are Put Blob / Delete Blob with If-None-Match: * or If-Match: ETag, so they are atomic
/// across every process using the container; <see cref="StorageVersion"/> is the ETag.</item>
/// <item>A writer's state is the blob itself: it leases the blob at its path (one writer per path across processes; a
/// lease left by a crashed process runs out after the writer lease, 60 s unless configured), stages each <c>BlockSize</c> of
/// data as a block, and on Close commits the block list, so the blob's committed block list (ids and sizes) is
/// the session's whole state, readable by any process that resumes it. Truncate re-stages the part of the cut block
/// that stays (read back from the committed blob) and commits the shorter list at once. Bytes a writer staged but
/// did not commit (a crash mid-chunk) are never part of the blob and expire with the service's uncommitted-block
/// garbage collection. Like the filesystem, a closed writer's bytes are readable at its path.</item>
/// <item>Blob storage has no rename, and blocks belong to one blob: CommitTo and Move commit the source, then copy
/// it server-side (Copy Blob within the account: the registry sends no byte twice) and delete the source.</item>
/// <item>Folders exist only through the blobs below them; deleting one deletes every blob with its prefix (breaking
/// the leases of writers still holding one).</item>
/// </list>
/// </summary>
public sealed class AzureBlobDriver : IStorageDriver, IStartupCheck
{
    public const string DriverName = "azure";

    /// <summary>The bounds Azure sets on a (finite) lease.</summary>
    internal static readonly TimeSpan MinLease = TimeSpan.FromSeconds(15), MaxLease = TimeSpan.FromSeconds(60);

    /// <summary>How long a writer's lease lasts without renewal; a crashed writer blocks its path this long at most.</summary>
    private readonly TimeSpan leaseDuration;

    /// <summary>Renew a writer's lease before the next call once this much of it has passed (a third of it).</summary>
    private TimeSpan LeaseRenewAfter => leaseDuration / 3;

    /// <summary>Metadata holding the write time in milliseconds: Last-Modified only has whole seconds.</summary>
    private const string ModifiedKey = "srmodified";

    /// <summary>Largest content one Put Blob carries; PutContent is for small objects, well below.</summary>
    private const long SingleUploadLimit = 256L * 1024 * 1024;

    private readonly BlobContainerClient container;
    private readonly string prefix;
    private readonly int blockSize;
    private readonly TimeProvider time;
    private readonly bool createContainer;

    /// <summary>How long a download SAS lasts; null when blob downloads are not redirected.</summary>
    private readonly TimeSpan? redirectExpiry;

    public AzureBlobDriver(BlobContainerClient container, string rootPrefix = "", int blockSize = 8 * 1024 * 1024, TimeProvider? time = null,
        bool createContainer = false, TimeSpan? writerLease = null, TimeSpan? redirectExpiry = null)
    {
        // A SAS is signed locally with the account key; a client holding only a SAS (or a token) cannot sign one.
        if (redirectExpiry is not null && !container.CanGenerateSasUri)
            throw new InvalidOperationException("Registry:Storage:Azure:RedirectDownloads needs the account key (AccountKey, or a connection string with one) to sign download URLs");
        this.redirectExpiry = redirectExpiry;
        this.createContainer = createContainer;
        leaseDuration = writerLease ?? MaxLease;
        if (leaseDuration < MinLease || leaseDuration > MaxLease)
            throw new ArgumentOutOfRangeException(nameof(writerLease), leaseDuration, "Registry:Storage:Azure:WriterLease must be from 15 to 60 seconds (Azure's lease limits)");
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockSize, 100 * 1024 * 1024);
        this.container = container;
        var trimmed = rootPrefix.Trim('/');
        prefix = trimmed.Length == 0 ? "" : trimmed + "/";
        this.blockSize = blockSize;
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>A client for the configured container, from a connection string or account + key/SAS.</summary>
    public static BlobContainerClient ContainerClient(AzureBlobDriverOptions options)
    {
        var clientOptions = new BlobClientOptions();
        clientOptions.Retry.NetworkTimeout = TimeSpan.FromSeconds(100);
        if (!string.IsNullOrWhiteSpace(options.ConnectionString))
            return new BlobContainerClient(options.ConnectionString, options.Container, clientOptions);
        if (string.IsNullOrWhiteSpace(options.AccountName))
            throw new InvalidOperationException("Registry:Storage:Azure needs ConnectionString, or AccountName with AccountKey or SasToken");
        var service = new Uri(string.IsNullOrWhiteSpace(options.ServiceUri) ? $"https://{options.AccountName}.blob.core.windows.net" : options.ServiceUri);
        var containerUri = new Uri(service.ToString().TrimEnd('/') + "/" + options.Container);
        if (!string.IsNullOrWhiteSpace(options.AccountKey))
            return new BlobContainerClient(containerUri, new StorageSharedKeyCredential(options.AccountName, options.AccountKey), clientOptions);
        if (!string.IsNullOrWhiteSpace(options.SasToken))
            return new BlobContainerClient(containerUri, new AzureSasCredential(options.SasToken.TrimStart('?')), clientOptions);
        throw new InvalidOperationException("Registry:Storage:Azure needs AccountKey or SasToken with AccountName");
    }

    public string Name => DriverName;

    /// <summary>
    /// Checks at start-up that the container is reachable with these credentials (creating it if allowed), so a wrong
    /// key or endpoint stops the registry with the reason instead of failing its first push.
    /// </summary>
    public async Task EnsureReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (createContainer)
            {
                try
                {
                    await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
                }
                catch (RequestFailedException e) when (e.Status == 403 && e.ErrorCode is "AuthorizationPermissionMismatch" or "AuthorizationResourceTypeMismatch")
                {
                    // A container-scoped SAS may not create containers: the listing below tells whether it is there.
                }
            }
            // What the driver needs anyway (listing), so a container SAS without account rights passes too.
            await foreach (var _ in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellationToken).AsPages(pageSizeHint: 1))
                break;
        }
        catch (RequestFailedException e)
        {
            throw new StorageUnavailableException(Name, container.Uri.GetLeftPart(UriPartial.Path),
                e.Status == 404 ? "the container does not exist" : $"{e.Status} {e.ErrorCode}", e);
        }
        catch (Exception e) when (e is HttpRequestException or AggregateException or TimeoutException)
        {
            throw new StorageUnavailableException(Name, container.Uri.GetLeftPart(UriPartial.Path), $"unreachable: {e.Message}", e);
        }
    }

    // ---- whole objects ----

    public Task<byte[]> GetContentAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        var result = await Blob(path).DownloadContentAsync(cancellationToken);
        return result.Value.Content.ToArray();
    });

    public Task PutContentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Run(path, async () =>
    {
        await UploadAsync(path, content, conditions: null, cancellationToken);
        return true;
    });

    public Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        try
        {
            var result = await Blob(path).DownloadContentAsync(cancellationToken);
            return new VersionedContent(result.Value.Content.ToArray(), new StorageVersion(result.Value.Details.ETag.ToString()));
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    });

    public Task<bool> PutIfAbsentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Run(path, async () =>
    {
        try
        {
            await UploadAsync(path, content, new BlobRequestConditions { IfNoneMatch = ETag.All }, cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (e.Status == 409 && e.ErrorCode == BlobErrorCode.BlobAlreadyExists || IsConditionNotMet(e))
        {
            return false;
        }
    });

    public Task<bool> PutIfVersionMatchesAsync(string path, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken) =>
        Run(path, async () =>
        {
            try
            {
                await UploadAsync(path, content, new BlobRequestConditions { IfMatch = new ETag(expected.Value) }, cancellationToken);
                return true;
            }
            catch (RequestFailedException e) when (IsConditionNotMet(e) || e.Status == 404)
            {
                return false;
            }
        });

    public Task<bool> DeleteIfVersionMatchesAsync(string path, StorageVersion expected, CancellationToken cancellationToken) => Run(path, async () =>
    {
        try
        {
            await Blob(path).DeleteAsync(DeleteSnapshotsOption.None, new BlobRequestConditions { IfMatch = new ETag(expected.Value) }, cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (IsConditionNotMet(e) || e.Status == 404)
        {
            return false;
        }
    });

    private async Task UploadAsync(string path, ReadOnlyMemory<byte> content, BlobRequestConditions? conditions, CancellationToken cancellationToken)
    {
        if (content.Length > SingleUploadLimit) throw new ArgumentOutOfRangeException(nameof(content), "PutContent is for small objects; use a writer");
        // One Put Blob, whatever the size: the SDK would otherwise split a large upload into blocks and a block list.
        await Blob(path).UploadAsync(BinaryData.FromBytes(content), new BlobUploadOptions
        {
            Conditions = conditions,
            Metadata = ModifiedNow(),
            TransferOptions = new StorageTransferOptions { InitialTransferSize = SingleUploadLimit, MaximumTransferSize = SingleUploadLimit },
        }, cancellationToken);
    }

    // ---- streams ----

    public Task<Stream> ReaderAsync(string path, long offset, CancellationToken cancellationToken) => Run(path, async () =>
    {
        if (offset < 0) throw new InvalidOffsetException(Name, path, offset);
        var blob = Blob(path);
        try
        {
            var (first, length) = await OpenAtAsync(blob, offset, cancellationToken);
            // Seekable, so the blob endpoint can answer Range requests: a seek opens another ranged GET.
            return new RangedReadStream(length, offset, first, async (position, token) =>
            {
                try
                {
                    return (await OpenAtAsync(blob, position, token)).Content;
                }
                catch (Exception e) when (Translate(e, path) is { } translated)
                {
                    throw translated;
                }
            });
        }
        catch (RequestFailedException e) when (e.Status == 416)
        {
            // At or past the end (or an empty blob): nothing to read, but only if there is a blob at all.
            await blob.GetPropertiesAsync(cancellationToken: cancellationToken);
            return (Stream)new MemoryStream([], writable: false);
        }
    });

    /// <summary>A ranged GET from the offset, with the blob's whole length.</summary>
    private static async Task<(Stream Content, long Length)> OpenAtAsync(BlobClient blob, long offset, CancellationToken cancellationToken)
    {
        var result = (await blob.DownloadStreamingAsync(new BlobDownloadOptions { Range = offset == 0 ? default : new HttpRange(offset) }, cancellationToken)).Value;
        // Content-Range "bytes a-b/total" when ranged; otherwise the content is the whole blob.
        var range = result.Details.ContentRange;
        var length = range is not null && range.LastIndexOf('/') is var slash and >= 0 && long.TryParse(range[(slash + 1)..], CultureInfo.InvariantCulture, out var total)
            ? total
            : offset + result.Details.ContentLength;
        return (result.Content, length);
    }

    public Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken) => Run(path, async () =>
    {
        var blob = BlockBlob(path);
        if (!append)
        {
            // Starts empty, over whatever was there; a blob leased by a writer at work refuses this (412: busy).
            await blob.UploadAsync(new MemoryStream([]), new BlobUploadOptions { Metadata = ModifiedNow() }, cancellationToken);
        }
        var lease = blob.GetBlobLeaseClient();
        await lease.AcquireAsync(leaseDuration, cancellationToken: cancellationToken);
        var leased = new BlobRequestConditions { LeaseId = lease.LeaseId };
        try
        {
            var blocks = new List<(string Id, long Size)>();
            if (append)
            {
                var list = (await blob.GetBlockListAsync(BlockListTypes.Committed, conditions: leased, cancellationToken: cancellationToken)).Value;
                blocks.AddRange(list.CommittedBlocks.Select(b => (b.Name, b.SizeLong)));
                var length = (await blob.GetPropertiesAsync(leased, cancellationToken)).Value.ContentLength;
                if (blocks.Sum(b => b.Size) != length)
                {
                    // Written whole by Put Blob (PutContent), which leaves no block list: its bytes become the first
                    // block, so appending keeps them.
                    var content = (await blob.DownloadContentAsync(new BlobDownloadOptions { Conditions = leased }, cancellationToken)).Value.Content;
                    var id = NewBlockId();
                    await blob.StageBlockAsync(id, content.ToStream(), new BlockBlobStageBlockOptions { Conditions = leased }, cancellationToken);
                    blocks = [(id, content.ToMemory().Length)];
                    await blob.CommitBlockListAsync(blocks.Select(b => b.Id), new CommitBlockListOptions { Conditions = leased, Metadata = ModifiedNow() }, cancellationToken);
                }
            }
            return (IStorageWriter)new Writer(this, path, blob, lease, blocks);
        }
        catch
        {
            await ReleaseQuietlyAsync(lease);
            throw;
        }
    });

    public Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        if (path != StoragePath.Root)
        {
            try
            {
                var properties = (await Blob(path).GetPropertiesAsync(cancellationToken: cancellationToken)).Value;
                return new StorageFileInfo(path, properties.ContentLength, ModifiedOf(properties.Metadata, properties.LastModified), IsDirectory: false);
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                // Not a blob: perhaps a folder.
            }
        }
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = FolderPrefix(path), Traits = BlobTraits.Metadata }, cancellationToken))
            return new StorageFileInfo(path, 0, ModifiedOf(item.Metadata, item.Properties.LastModified ?? DateTimeOffset.MinValue), IsDirectory: true);
        if (path == StoragePath.Root) return new StorageFileInfo(path, 0, DateTimeOffset.MinValue, IsDirectory: true);
        throw new PathNotFoundException(Name, path);
    }, rootAllowed: true);

    public Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken) => Run(path, async () =>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        var folder = FolderPrefix(path);
        // The service lists full keys in order, where "a-b" sorts before "a/x": child names are put in order here.
        var names = new SortedSet<string>(StringComparer.Ordinal);
        var any = false;
        await foreach (var item in container.GetBlobsByHierarchyAsync(new GetBlobsByHierarchyOptions { Prefix = folder, Delimiter = "/" }, cancellationToken))
        {
            any = true;
            var name = (item.IsPrefix ? item.Prefix : item.Blob.Name)[folder.Length..].TrimEnd('/');
            if (!StoragePath.IsValidComponent(name)) continue;
            if (startAfter is not null && string.CompareOrdinal(name, startAfter) <= 0) continue;
            names.Add(name);
            if (names.Count > maxCount) names.Remove(names.Max!);
        }
        if (!any && path != StoragePath.Root) throw new PathNotFoundException(Name, path);
        return (IReadOnlyList<string>)names.ToList();
    }, rootAllowed: true);

    public Task MoveAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken)
    {
        try
        {
            StoragePath.Validate(Name, destinationPath);
        }
        catch (InvalidPathException e)
        {
            return Task.FromException(e);
        }
        return Run(sourcePath, async () =>
        {
            await CopyAsync(sourcePath, destinationPath, sourceLease: null, cancellationToken);
            await DeleteBlobAsync(Blob(sourcePath), cancellationToken);
            return true;
        });
    }

    public Task DeleteAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        var found = await DeleteBlobAsync(Blob(path), cancellationToken);
        // Everything below, blobs with only uncommitted blocks too (a writer's staged data): "/a/" never matches "/ab".
        var below = new List<string>();
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = FolderPrefix(path), States = BlobStates.Uncommitted }, cancellationToken))
            below.Add(item.Name);
        await Parallel.ForEachAsync(below, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (name, token) =>
        {
            if (await DeleteBlobAsync(container.GetBlobClient(name), token)) Interlocked.Exchange(ref found, true);
        });
        if (!found) throw new PathNotFoundException(Name, path);
        return true;
    });

    public Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken) => Run(path, () =>
    {
        if (redirectExpiry is not { } expiry || (method != HttpMethod.Get && method != HttpMethod.Head)) return Task.FromResult((Uri?)null);
        // Read-only, for this one blob, signed here without a call to the service.
        return Task.FromResult((Uri?)Blob(path).GenerateSasUri(Azure.Storage.Sas.BlobSasPermissions.Read, time.GetUtcNow() + expiry));
    });

    // ---- helpers ----

    private BlobClient Blob(string path) => container.GetBlobClient(Key(path));

    private BlockBlobClient BlockBlob(string path) => container.GetBlockBlobClient(Key(path));

    private string Key(string path) => prefix + path[1..];

    private string FolderPrefix(string path) => path == StoragePath.Root ? prefix : Key(path) + "/";

    private Dictionary<string, string> ModifiedNow() => new()
    {
        [ModifiedKey] = time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
    };

    private static DateTimeOffset ModifiedOf(IDictionary<string, string>? metadata, DateTimeOffset lastModified) =>
        metadata is not null && metadata.TryGetValue(ModifiedKey, out var value) && long.TryParse(value, CultureInfo.InvariantCulture, out var ms)
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : lastModified;

    private static string NewBlockId() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    private static bool IsConditionNotMet(RequestFailedException e) => e.Status == 412 && e.ErrorCode == BlobErrorCode.ConditionNotMet;

    private static bool IsLeaseConflict(RequestFailedException e) =>
        e.ErrorCode == BlobErrorCode.LeaseIdMissing || e.ErrorCode == BlobErrorCode.LeaseAlreadyPresent
        || e.ErrorCode == BlobErrorCode.LeaseIdMismatchWithBlobOperation || e.ErrorCode == BlobErrorCode.LeaseIdMismatchWithLeaseOperation;

    /// <summary>Deletes one blob, breaking a writer's lease on it first if need be; false when there was none.</summary>
    private async Task<bool> DeleteBlobAsync(BlobClient blob, CancellationToken cancellationToken)
    {
        try
        {
            return (await blob.DeleteIfExistsAsync(cancellationToken: cancellationToken)).Value;
        }
        catch (RequestFailedException e) when (e.Status == 412 && IsLeaseConflict(e))
        {
            // A writer still holds it (an upload deleted as abandoned, or cancelled from another request): its next
            // call finds the blob gone.
            await blob.GetBlobLeaseClient().BreakAsync(TimeSpan.Zero, cancellationToken: cancellationToken);
            return (await blob.DeleteIfExistsAsync(cancellationToken: cancellationToken)).Value;
        }
    }

    /// <summary>A server-side copy of a committed blob onto the destination (which it replaces whole), waited for.</summary>
    private async Task CopyAsync(string sourcePath, string destinationPath, string? sourceLease, CancellationToken cancellationToken)
    {
        var source = Blob(sourcePath);
        try
        {
            await source.GetPropertiesAsync(sourceLease is null ? null : new BlobRequestConditions { LeaseId = sourceLease }, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new PathNotFoundException(Name, sourcePath, e);
        }
        var destination = Blob(destinationPath);
        CopyFromUriOperation copy;
        while (true)
        {
            try
            {
                copy = await destination.StartCopyFromUriAsync(source.Uri, new BlobCopyFromUriOptions { Metadata = ModifiedNow() }, cancellationToken);
                break;
            }
            catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.PendingCopyOperation)
            {
                // Azure refuses a copy onto a blob while another copy onto it is pending (another publish of the same
                // digest, or another replica's): let that one end, whatever its outcome, then copy ours over it.
                await CopyEndedAsync(destination, cancellationToken);
            }
        }
        // Within one account the service usually copies before it answers; otherwise poll the destination. Its copy
        // status may be another copy's by then (two publishes of one digest): either leaves the whole content.
        var status = copy.HasCompleted ? CopyStatus.Success : await CopyEndedAsync(destination, cancellationToken);
        if (status != CopyStatus.Success)
            throw new StorageUnavailableException(Name, destinationPath, $"copy from {sourcePath} ended {status}");
    }

    /// <summary>Polls a blob until the copy onto it is no longer pending; returns how the last copy ended.</summary>
    private async Task<CopyStatus> CopyEndedAsync(BlobClient blob, CancellationToken cancellationToken)
    {
        while (true)
        {
            CopyStatus status;
            try
            {
                status = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken)).Value.BlobCopyStatus ?? CopyStatus.Success;
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return CopyStatus.Aborted; // deleted meanwhile: no copy pending, and none that left content
            }
            if (status != CopyStatus.Pending) return status;
            await Task.Delay(TimeSpan.FromMilliseconds(100), time, cancellationToken);
        }
    }

    private static async Task ReleaseQuietlyAsync(BlobLeaseClient lease)
    {
        try
        {
            await lease.ReleaseAsync();
        }
        catch (RequestFailedException)
        {
            // Gone, broken or expired: nothing left to release.
        }
    }

    /// <summary>Runs an operation with its path validated and the store's failures translated into the driver's.</summary>
    private async Task<T> Run<T>(string path, Func<Task<T>> operation, bool rootAllowed = false)
    {
        StoragePath.Validate(Name, path, rootAllowed);
        try
        {
            return await operation();
        }
        catch (Exception e) when (Translate(e, path) is { } translated)
        {
            throw translated;
        }
    }

    private StorageDriverException? Translate(Exception e, string path) => e switch
    {
        StorageDriverException => null,
        RequestFailedException { Status: 404 } => new PathNotFoundException(Name, path, e),
        RequestFailedException r when r.Status is 409 or 412 && IsLeaseConflict(r) => new PathBusyException(Name, path, e),
        RequestFailedException r when r.Status is 401 or 403 => new StorageUnavailableException(Name, path, $"access denied: {r.ErrorCode}", e),
        RequestFailedException r when r.Status >= 500 || r.Status == 0 => new StorageUnavailableException(Name, path, $"{r.Status} {r.ErrorCode}", e),
        HttpRequestException or TimeoutException => new StorageUnavailableException(Name, path, e.Message, e),
        AggregateException { InnerExceptions: [RequestFailedException or HttpRequestException, ..] } a => Translate(a.InnerExceptions[0], path),
        _ => null,
    };

    /// <summary>
    /// Stages blocks on the leased blob and commits its block list on Close, Truncate and Commit; see the class
    /// summary. Not thread-safe, as a request body is written by one request.
    /// </summary>
    private sealed class Writer(AzureBlobDriver driver, string path, BlockBlobClient blob, BlobLeaseClient lease, List<(string Id, long Size)> committed)
        : IStorageWriter
    {
        /// <summary>The blob's committed blocks and then those staged since, in order.</summary>
        private readonly List<(string Id, long Size)> blocks = [.. committed];

        private readonly MemoryStream buffer = new();
        private long stagedSize = committed.Sum(b => b.Size);
        private bool dirty;
        private bool ended;
        private long leaseRenewedAt = driver.time.GetTimestamp();

        private BlobRequestConditions Leased => new() { LeaseId = lease.LeaseId };

        public long Size => stagedSize + buffer.Length;

        public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            while (!data.IsEmpty)
            {
                var room = driver.blockSize - (int)buffer.Length;
                var piece = data[..Math.Min(room, data.Length)];
                buffer.Write(piece.Span);
                data = data[piece.Length..];
                if (buffer.Length >= driver.blockSize) await Step(() => StageBufferAsync(cancellationToken), cancellationToken);
            }
        }

        public Task TruncateAsync(long size, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            ArgumentOutOfRangeException.ThrowIfNegative(size);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(size, Size);
            if (size >= stagedSize)
            {
                buffer.SetLength(size - stagedSize);
                buffer.Position = buffer.Length;
                return Task.CompletedTask;
            }
            return Step(async () =>
            {
                buffer.SetLength(0);
                // Everything staged becomes readable, so the part of the cut block that stays can be read back.
                await CommitListAsync(cancellationToken);
                var kept = new List<(string Id, long Size)>();
                long offset = 0;
                foreach (var block in blocks)
                {
                    if (offset + block.Size <= size) kept.Add(block);
                    else
                    {
                        if (offset < size)
                        {
                            var head = await blob.DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(offset, size - offset), Conditions = Leased }, cancellationToken);
                            var id = NewBlockId();
                            await blob.StageBlockAsync(id, head.Value.Content.ToStream(), new BlockBlobStageBlockOptions { Conditions = Leased }, cancellationToken);
                            kept.Add((id, size - offset));
                        }
                        break;
                    }
                    offset += block.Size;
                }
                blocks.Clear();
                blocks.AddRange(kept);
                stagedSize = size;
                // Committed at once: a process that dies now must not leave the taken-back bytes in the session.
                await CommitListAsync(cancellationToken);
            }, cancellationToken);
        }

        public Task CloseAsync(CancellationToken cancellationToken) => End(async () =>
        {
            await StageBufferAsync(cancellationToken);
            if (dirty) await CommitListAsync(cancellationToken);
            await lease.ReleaseAsync(cancellationToken: cancellationToken);
        }, cancellationToken);

        public Task CancelAsync(CancellationToken cancellationToken) => End(async () =>
        {
            buffer.SetLength(0);
            await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.None, Leased, cancellationToken);
        }, cancellationToken);

        public Task CommitAsync(CancellationToken cancellationToken) => End(async () =>
        {
            await StageBufferAsync(cancellationToken);
            await CommitListAsync(cancellationToken);
            await lease.ReleaseAsync(cancellationToken: cancellationToken);
        }, cancellationToken);

        public Task CommitToAsync(string destinationPath, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            try
            {
                StoragePath.Validate(driver.Name, destinationPath);
            }
            catch (InvalidPathException e)
            {
                return Task.FromException(e);
            }
            return End(async () =>
            {
                await StageBufferAsync(cancellationToken);
                await CommitListAsync(cancellationToken);
                // Still leased: no other writer can change the source while it is copied.
                await driver.CopyAsync(path, destinationPath, lease.LeaseId, cancellationToken);
                await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.None, Leased, cancellationToken);
            }, cancellationToken);
        }

        private async Task StageBufferAsync(CancellationToken cancellationToken)
        {
            if (buffer.Length == 0) return;
            await RenewIfDueAsync(cancellationToken);
            var id = NewBlockId();
            buffer.Position = 0;
            await blob.StageBlockAsync(id, buffer, new BlockBlobStageBlockOptions { Conditions = Leased }, cancellationToken);
            blocks.Add((id, buffer.Length));
            stagedSize += buffer.Length;
            buffer.SetLength(0);
            dirty = true;
        }

        private async Task CommitListAsync(CancellationToken cancellationToken)
        {
            await RenewIfDueAsync(cancellationToken);
            await blob.CommitBlockListAsync(blocks.Select(b => b.Id), new CommitBlockListOptions { Conditions = Leased, Metadata = driver.ModifiedNow() }, cancellationToken);
            dirty = false;
        }

        private async Task RenewIfDueAsync(CancellationToken cancellationToken)
        {
            if (driver.time.GetElapsedTime(leaseRenewedAt) < driver.LeaseRenewAfter) return;
            await lease.RenewAsync(cancellationToken: cancellationToken);
            leaseRenewedAt = driver.time.GetTimestamp();
        }

        /// <summary>One store call of the writer, its failures translated: a blob deleted under it is not found.</summary>
        private async Task Step(Func<Task> step, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await step();
            }
            catch (RequestFailedException e) when (e.Status == 404 || e.Status == 412 && e.ErrorCode == BlobErrorCode.LeaseNotPresentWithBlobOperation
                                                   || e.ErrorCode == BlobErrorCode.LeaseLost || e.ErrorCode == BlobErrorCode.LeaseNotPresentWithLeaseOperation)
            {
                // Its folder was deleted (which breaks the lease), or the lease ran out and the blob went with it.
                throw new PathNotFoundException(driver.Name, path, e);
            }
            catch (Exception e) when (driver.Translate(e, path) is { } translated)
            {
                throw translated;
            }
        }

        /// <summary>A step that ends the writer: afterwards it takes no more calls, whether the step worked or not.</summary>
        private async Task End(Func<Task> step, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            ended = true;
            try
            {
                await Step(step, cancellationToken);
            }
            catch
            {
                await ReleaseQuietlyAsync(lease);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (ended) return;
            try
            {
                await CloseAsync(CancellationToken.None);
            }
            catch (Exception e) when (e is StorageDriverException or RequestFailedException)
            {
                // Disposing is best effort: what was not closed is what the client was not told it has.
            }
        }
    }
}
