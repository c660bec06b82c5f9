using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Amazon;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage.Drivers;

/// <summary>Where and how the S3 driver reaches its bucket ("Registry:Storage:S3").</summary>
public sealed class S3DriverOptions
{
    public string Bucket { get; set; } = "";

    /// <summary>The bucket's region ("eu-west-1"); for S3-compatible servers whatever they accept.</summary>
    public string Region { get; set; } = "us-east-1";

    /// <summary>An S3-compatible endpoint (MinIO, Ceph, an emulator); AWS itself when not set.</summary>
    public string? Endpoint { get; set; }

    /// <summary>Path-style addressing (endpoint/bucket/key), which most S3-compatible servers need.</summary>
    public bool ForcePathStyle { get; set; }

    /// <summary>Static credentials; when not set the SDK's default chain (environment, profile, instance role, ...).</summary>
    public string? AccessKey { get; set; }

    public string? SecretKey { get; set; }

    public string? SessionToken { get; set; }

    /// <summary>A prefix every key starts with ("registry/v1"); empty for none.</summary>
    public string RootPrefix { get; set; } = "";

    /// <summary>Server-side encryption: "" (the bucket's default), "AES256" or "aws:kms" (with <see cref="KmsKeyId"/>).</summary>
    public string ServerSideEncryption { get; set; } = "";

    public string? KmsKeyId { get; set; }

    /// <summary>Bytes a writer gathers per multipart part (at least 5 MiB, S3's minimum); at most 10,000 parts per object.</summary>
    public int PartSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>Creates the bucket at start-up when it does not exist.</summary>
    public bool CreateBucket { get; set; }

    /// <summary>Blob GET/HEAD redirect clients to a presigned URL of the object (off: the registry serves the bytes).</summary>
    public bool RedirectDownloads { get; set; }

    /// <summary>How long a presigned download URL stays valid.</summary>
    public TimeSpan RedirectExpiry { get; set; } = TimeSpan.FromMinutes(20);
}

/// <summary>
/// Driver paths as objects in one bucket, keyed "{RootPrefix}/{path without its leading slash}".
/// <list type="bullet">
/// <item>PutContent is one PutObject: S3 replaces objects whole, so readers see the old or the new one.</item>
/// <item>Conditional operations are PutObject with If-None-Match: * or If-Match: ETag and DeleteObject with If-Match
/// (S3's conditional writes); <see cref="StorageVersion"/> is the ETag. A 409 ConditionalRequestConflict (two
/// conditional writes in flight) is retried.</item>
/// <item>A writer keeps its session in the bucket, in a small state object beside its path (".{name}.writer", a name
/// no driver path can have, so it is never listed): the multipart upload's id, its parts (number, ETag, size), the
/// bytes after the last whole part (the tail, under one part size), and a lease (owner, expiry) taken and renewed
/// with If-Match on the state's ETag, so one writer holds a path at a time across processes and a crashed one
/// loses it after <see cref="LeaseDuration"/>. Parts are uploaded as each fills (PartSize, streamed, never the whole
/// file in memory); Close writes the state. Nothing is readable at the path before a commit, as on S3 itself.</item>
/// <item>Commit completes the multipart upload at the path (or, when no part was filled, puts the tail as one
/// object). CommitTo puts the tail straight at the destination when there are no parts; otherwise, since an S3
/// multipart upload is bound to the key it was started with, it completes at the writer's path and copies server-side
/// (CopyObject, or UploadPartCopy above 5 GiB) to the destination, then deletes the writer's object.</item>
/// <item>Truncate within the tail cuts it; into uploaded parts (which S3 cannot read back), it completes the upload
/// at the writer's key, re-uploads the kept prefix from there into a new upload and deletes that object: slow, but
/// only for a chunk that failed part-way. Either way the shorter state is written at once.</item>
/// </list>
/// </summary>
public sealed class S3Driver : IStorageDriver, IStartupCheck, IDisposable
{
    public const string DriverName = "s3";

    internal static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan LeaseRenewAfter = TimeSpan.FromSeconds(20);
    private const string ModifiedKey = "x-amz-meta-srmodified";
    private const long MaxCopyObjectSize = 5L * 1024 * 1024 * 1024;

    private readonly IAmazonS3 client;
    private readonly string bucket;
    private readonly string prefix;
    private readonly int partSize;
    private readonly S3DriverOptions options;
    private readonly TimeProvider time;

    public S3Driver(IAmazonS3 client, S3DriverOptions options, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PartSize, 1);
        if (string.IsNullOrWhiteSpace(options.Bucket)) throw new ArgumentException("Registry:Storage:S3:Bucket is required", nameof(options));
        this.client = client;
        this.options = options;
        bucket = options.Bucket;
        var trimmed = options.RootPrefix.Trim('/');
        prefix = trimmed.Length == 0 ? "" : trimmed + "/";
        partSize = options.PartSize;
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>A client for the configured endpoint and credentials, set up to work with S3-compatible servers too.</summary>
    public static AmazonS3Client Client(S3DriverOptions options)
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle,
            // Checksums only where the API requires them: many S3-compatible servers reject the newer trailing ones.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (!string.IsNullOrWhiteSpace(options.Endpoint))
        {
            config.ServiceURL = options.Endpoint;
            config.AuthenticationRegion = options.Region;
        }
        else config.RegionEndpoint = RegionEndpoint.GetBySystemName(options.Region);
        if (!string.IsNullOrWhiteSpace(options.AccessKey))
        {
            AWSCredentials credentials = string.IsNullOrWhiteSpace(options.SessionToken)
                ? new BasicAWSCredentials(options.AccessKey, options.SecretKey)
                : new SessionAWSCredentials(options.AccessKey, options.SecretKey, options.SessionToken);
            return new AmazonS3Client(credentials, config);
        }
        return new AmazonS3Client(config);
    }

    public string Name => DriverName;

    public async Task EnsureReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (options.CreateBucket)
            {
                try
                {
                    await client.PutBucketAsync(new PutBucketRequest { BucketName = bucket }, cancellationToken);
                }
                catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
                {
                    // There already.
                }
            }
            await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, Prefix = prefix, MaxKeys = 1 }, cancellationToken);
        }
        catch (AmazonS3Exception e)
        {
            throw new StorageUnavailableException(Name, $"s3://{bucket}/{prefix}", $"{(int)e.StatusCode} {e.ErrorCode}", e);
        }
        catch (Exception e) when (e is HttpRequestException or AmazonClientException or TimeoutException)
        {
            throw new StorageUnavailableException(Name, $"s3://{bucket}/{prefix}", $"unreachable: {e.Message}", e);
        }
    }

    // ---- whole objects ----

    public Task<byte[]> GetContentAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
        (await GetObjectAsync(Key(path), cancellationToken)).Content);

    public Task PutContentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Run(path, async () =>
    {
        await PutObjectAsync(Key(path), content, null, null, cancellationToken);
        return true;
    });

    public Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        try
        {
            var (content, etag) = await GetObjectAsync(Key(path), cancellationToken);
            return new VersionedContent(content, new StorageVersion(etag));
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    });

    public Task<bool> PutIfAbsentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => Run(path, () =>
        ConditionalAsync(() => PutObjectAsync(Key(path), content, ifNoneMatch: "*", ifMatch: null, cancellationToken)));

    public Task<bool> PutIfVersionMatchesAsync(string path, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken) =>
        Run(path, () => ConditionalAsync(() => PutObjectAsync(Key(path), content, ifNoneMatch: null, ifMatch: expected.Value, cancellationToken)));

    public Task<bool> DeleteIfVersionMatchesAsync(string path, StorageVersion expected, CancellationToken cancellationToken) => Run(path, () =>
        ConditionalAsync(async () =>
        {
            await client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = Key(path), IfMatch = expected.Value }, cancellationToken);
            return "";
        }));

    /// <summary>A conditional write: true when it happened, false on 412 (or 404: nothing to match); 409 races are retried.</summary>
    private static async Task<bool> ConditionalAsync(Func<Task<string>> write)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await write();
                return true;
            }
            catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.NotFound)
            {
                return false;
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.Conflict && attempt < 5)
            {
                // ConditionalRequestConflict: another conditional write to the key is in flight; S3 asks for a retry.
                await Task.Delay(TimeSpan.FromMilliseconds(20 << attempt));
            }
        }
    }

    private async Task<(byte[] Content, string ETag)> GetObjectAsync(string key, CancellationToken cancellationToken)
    {
        using var response = await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = key }, cancellationToken);
        using var copy = new MemoryStream(response.ContentLength > 0 ? (int)Math.Min(response.ContentLength, int.MaxValue) : 0);
        await response.ResponseStream.CopyToAsync(copy, cancellationToken);
        return (copy.ToArray(), response.ETag);
    }

    private async Task<string> PutObjectAsync(string key, ReadOnlyMemory<byte> content, string? ifNoneMatch, string? ifMatch, CancellationToken cancellationToken)
    {
        var request = new PutObjectRequest
        {
            BucketName = bucket,
            Key = key,
            // Seekable, so the SDK can sign the payload and retry without aws-chunked encoding.
            InputStream = new MemoryStream(content.ToArray(), writable: false),
            UseChunkEncoding = false,
            AutoCloseStream = true,
        };
        if (ifNoneMatch is not null) request.IfNoneMatch = ifNoneMatch;
        if (ifMatch is not null) request.IfMatch = ifMatch;
        Describe(request.Metadata);
        ApplyEncryption(request);
        return (await client.PutObjectAsync(request, cancellationToken)).ETag;
    }

    private void Describe(MetadataCollection metadata) =>
        metadata[ModifiedKey] = time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    private void ApplyEncryption(PutObjectRequest request)
    {
        if (options.ServerSideEncryption.Length == 0) return;
        request.ServerSideEncryptionMethod = ServerSideEncryptionMethod.FindValue(options.ServerSideEncryption);
        if (!string.IsNullOrEmpty(options.KmsKeyId)) request.ServerSideEncryptionKeyManagementServiceKeyId = options.KmsKeyId;
    }

    // ---- streams ----

    public Task<Stream> ReaderAsync(string path, long offset, CancellationToken cancellationToken) => Run(path, async () =>
    {
        if (offset < 0) throw new InvalidOffsetException(Name, path, offset);
        try
        {
            var (first, length) = await OpenAtAsync(Key(path), offset, cancellationToken);
            // Seekable, so the blob endpoint can answer Range requests: a seek opens another ranged GET.
            return (Stream)new RangedReadStream(length, offset, first, async (position, token) =>
            {
                try
                {
                    return (await OpenAtAsync(Key(path), position, token)).Content;
                }
                catch (Exception e) when (Translate(e, path) is { } translated)
                {
                    throw translated;
                }
            });
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            await client.GetObjectMetadataAsync(bucket, Key(path), cancellationToken);
            return new MemoryStream([], writable: false);
        }
    });

    /// <summary>A ranged GET from the offset, with the object's whole length.</summary>
    private async Task<(Stream Content, long Length)> OpenAtAsync(string key, long offset, CancellationToken cancellationToken)
    {
        var request = new GetObjectRequest { BucketName = bucket, Key = key };
        if (offset > 0) request.ByteRange = new ByteRange($"bytes={offset}-");
        var response = await client.GetObjectAsync(request, cancellationToken);
        var range = response.ContentRange;
        var length = range is not null && range.LastIndexOf('/') is var slash and >= 0 && long.TryParse(range[(slash + 1)..], CultureInfo.InvariantCulture, out var total)
            ? total
            : offset + response.ContentLength;
        return (new OwningStream(response.ResponseStream, response), length);
    }

    public Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken) => Run(path, async () =>
    {
        var stateKey = StateKey(path);
        var existing = await ReadStateAsync(stateKey, cancellationToken);
        var owner = Guid.NewGuid().ToString("N");
        var leaseUntil = time.GetUtcNow() + LeaseDuration;
        if (existing is { } held && held.State.Owner is not null && held.State.LeaseUntil > time.GetUtcNow())
            throw new PathBusyException(Name, path);
        WriterState state;
        byte[] tail;
        if (append && existing is { } resumed)
        {
            state = resumed.State with { Owner = owner, LeaseUntil = leaseUntil };
            tail = resumed.Tail;
        }
        else if (append)
        {
            // Appending to a committed object: its bytes are where the session starts (read back, re-uploaded).
            state = new WriterState(null, [], owner, leaseUntil);
            tail = [];
            GetObjectResponse response;
            try
            {
                response = await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = Key(path) }, cancellationToken);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                throw new PathNotFoundException(Name, path, e);
            }
            using (response)
            {
                var seed = new Writer(this, path, stateKey, state, null, [], cancellationToken);
                var buffer = new byte[81920];
                int read;
                while ((read = await response.ResponseStream.ReadAsync(buffer, cancellationToken)) > 0) await seed.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                state = seed.Snapshot(out tail);
            }
        }
        else
        {
            state = new WriterState(null, [], owner, leaseUntil);
            tail = [];
        }
        // Taking the lease is the conditional write of the state: of two processes opening the path at once, one wins.
        var etag = await WriteStateAsync(stateKey, state, tail, existing?.ETag, mustBeAbsent: existing is null, cancellationToken)
                   ?? throw new PathBusyException(Name, path);
        if (!append && existing?.State.UploadId is { } abandoned) await AbortQuietlyAsync(Key(path), abandoned);
        return (IStorageWriter)new Writer(this, path, stateKey, state, etag, tail, cancellationToken);
    });

    public Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        if (path != StoragePath.Root)
        {
            try
            {
                var head = await client.GetObjectMetadataAsync(bucket, Key(path), cancellationToken);
                return new StorageFileInfo(path, head.ContentLength, ModifiedOf(head.Metadata, head.LastModified), IsDirectory: false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                // Not an object: perhaps a folder.
            }
        }
        var page = await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, Prefix = FolderPrefix(path), MaxKeys = 1 }, cancellationToken);
        if (page.S3Objects is [var first, ..]) return new StorageFileInfo(path, 0, ModifiedOf(new MetadataCollection(), first.LastModified), IsDirectory: true);
        if (path == StoragePath.Root) return new StorageFileInfo(path, 0, DateTimeOffset.MinValue, IsDirectory: true);
        throw new PathNotFoundException(Name, path);
    }, rootAllowed: true);

    public Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken) => Run(path, async () =>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        var folder = FolderPrefix(path);
        // Keys come in key order, where "a-b" sorts before "a/x": child names are put in order here. Every child
        // after startAfter has a key after folder + startAfter, so the listing can start there.
        var names = new SortedSet<string>(StringComparer.Ordinal);
        var any = false;
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = folder, Delimiter = "/", StartAfter = startAfter is null ? null : folder + startAfter };
        do
        {
            var page = await client.ListObjectsV2Async(request, cancellationToken);
            var children = (page.S3Objects ?? []).Select(o => o.Key).Concat(page.CommonPrefixes ?? []);
            foreach (var key in children)
            {
                any = true;
                var name = key[folder.Length..].TrimEnd('/');
                if (!StoragePath.IsValidComponent(name)) continue;
                if (startAfter is not null && string.CompareOrdinal(name, startAfter) <= 0) continue;
                names.Add(name);
                if (names.Count > maxCount) names.Remove(names.Max!);
            }
            request.ContinuationToken = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (request.ContinuationToken is not null);
        if (!any && startAfter is null && path != StoragePath.Root) throw new PathNotFoundException(Name, path);
        if (!any && startAfter is not null && path != StoragePath.Root) await StatAsync(path, cancellationToken);
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
            await CopyAsync(sourcePath, destinationPath, cancellationToken);
            await client.DeleteObjectAsync(bucket, Key(sourcePath), cancellationToken);
            return true;
        });
    }

    public Task DeleteAsync(string path, CancellationToken cancellationToken) => Run(path, async () =>
    {
        var found = false;
        try
        {
            await client.GetObjectMetadataAsync(bucket, Key(path), cancellationToken);
            await client.DeleteObjectAsync(bucket, Key(path), cancellationToken);
            found = true;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            // Not an object; perhaps a folder, or a file still being written.
        }
        // A writer's session of the path itself, and everything below the path, writers' sessions included.
        if (await DeleteWriterStateAsync(StateKey(path), path, cancellationToken)) found = true;
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = FolderPrefix(path) };
        do
        {
            var page = await client.ListObjectsV2Async(request, cancellationToken);
            var keys = (page.S3Objects ?? []).Select(o => o.Key).ToList();
            foreach (var key in keys.Where(k => k.EndsWith(StateSuffix, StringComparison.Ordinal)))
                await DeleteWriterStateAsync(key, null, cancellationToken);
            if (keys.Count > 0)
            {
                found = true;
                await client.DeleteObjectsAsync(new DeleteObjectsRequest { BucketName = bucket, Objects = keys.Select(k => new KeyVersion { Key = k }).ToList() }, cancellationToken);
            }
            request.ContinuationToken = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (request.ContinuationToken is not null);
        if (!found) throw new PathNotFoundException(Name, path);
        return true;
    });

    public Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken) => Run(path, async () =>
    {
        if (!options.RedirectDownloads || (method != HttpMethod.Get && method != HttpMethod.Head)) return null;
        var request = new GetPreSignedUrlRequest
        {
            BucketName = bucket,
            Key = Key(path),
            Verb = method == HttpMethod.Head ? HttpVerb.HEAD : HttpVerb.GET,
            Expires = time.GetUtcNow().UtcDateTime + options.RedirectExpiry,
        };
        if (options.Endpoint is { } endpoint && endpoint.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) request.Protocol = Protocol.HTTP;
        return (Uri?)new Uri(await client.GetPreSignedURLAsync(request));
    });

    // ---- helpers ----

    private const string StateSuffix = ".writer";

    private string Key(string path) => prefix + path[1..];

    private string FolderPrefix(string path) => path == StoragePath.Root ? prefix : Key(path) + "/";

    /// <summary>The key of a writer's session state: ".{name}.writer" beside the path, a name no driver path can have.</summary>
    private string StateKey(string path)
    {
        var parent = StoragePath.Parent(path);
        return (parent == StoragePath.Root ? prefix : Key(parent) + "/") + "." + StoragePath.Name(path) + StateSuffix;
    }

    /// <summary>The path a state key belongs to (its upload's key), for aborting its upload.</summary>
    private static string ObjectKeyOfState(string stateKey)
    {
        var slash = stateKey.LastIndexOf('/');
        var name = stateKey[(slash + 1)..];
        return stateKey[..(slash + 1)] + name[1..^StateSuffix.Length];
    }

    private static DateTimeOffset ModifiedOf(MetadataCollection metadata, DateTime? lastModified) =>
        metadata[ModifiedKey] is { } value && long.TryParse(value, CultureInfo.InvariantCulture, out var ms)
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : lastModified is { } at ? new DateTimeOffset(DateTime.SpecifyKind(at.ToUniversalTime(), DateTimeKind.Utc)) : DateTimeOffset.MinValue;

    private async Task<bool> DeleteWriterStateAsync(string stateKey, string? path, CancellationToken cancellationToken)
    {
        var state = await ReadStateAsync(stateKey, cancellationToken);
        if (state is null) return false;
        if (state.Value.State.UploadId is { } uploadId) await AbortQuietlyAsync(ObjectKeyOfState(stateKey), uploadId);
        await client.DeleteObjectAsync(bucket, stateKey, cancellationToken);
        return true;
    }

    private async Task AbortQuietlyAsync(string key, string uploadId)
    {
        try
        {
            await client.AbortMultipartUploadAsync(bucket, key, uploadId);
        }
        catch (AmazonServiceException)
        {
            // Already completed or aborted, or a server without Abort: a lifecycle rule removes stale uploads.
        }
    }

    /// <summary>A server-side copy of an object onto the destination, which it replaces whole.</summary>
    private async Task CopyAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken)
    {
        GetObjectMetadataResponse head;
        try
        {
            head = await client.GetObjectMetadataAsync(bucket, Key(sourcePath), cancellationToken);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PathNotFoundException(Name, sourcePath, e);
        }
        if (head.ContentLength <= MaxCopyObjectSize)
        {
            var request = new CopyObjectRequest
            {
                SourceBucket = bucket, SourceKey = Key(sourcePath), DestinationBucket = bucket, DestinationKey = Key(destinationPath),
                MetadataDirective = S3MetadataDirective.REPLACE,
            };
            Describe(request.Metadata);
            if (options.ServerSideEncryption.Length > 0) request.ServerSideEncryptionMethod = ServerSideEncryptionMethod.FindValue(options.ServerSideEncryption);
            await client.CopyObjectAsync(request, cancellationToken);
            return;
        }
        // Over CopyObject's 5 GiB: a multipart upload at the destination made of server-side copied ranges.
        var create = new InitiateMultipartUploadRequest { BucketName = bucket, Key = Key(destinationPath) };
        Describe(create.Metadata);
        var upload = (await client.InitiateMultipartUploadAsync(create, cancellationToken)).UploadId;
        try
        {
            const long range = 1L << 30;
            var parts = new List<PartETag>();
            for (long offset = 0, number = 1; offset < head.ContentLength; offset += range, number++)
            {
                var copied = await client.CopyPartAsync(new CopyPartRequest
                {
                    SourceBucket = bucket, SourceKey = Key(sourcePath), DestinationBucket = bucket, DestinationKey = Key(destinationPath),
                    UploadId = upload, PartNumber = (int)number, FirstByte = offset, LastByte = Math.Min(offset + range, head.ContentLength) - 1,
                }, cancellationToken);
                parts.Add(new PartETag((int)number, copied.ETag));
            }
            await client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest { BucketName = bucket, Key = Key(destinationPath), UploadId = upload, PartETags = parts }, cancellationToken);
        }
        catch
        {
            await AbortQuietlyAsync(Key(destinationPath), upload);
            throw;
        }
    }

    // ---- writer state: [4-byte big-endian header length][JSON header][tail bytes] ----

    internal sealed record Part(int Number, string ETag, long Size);

    internal sealed record WriterState(string? UploadId, List<Part> Parts, string? Owner, DateTimeOffset LeaseUntil)
    {
        public long PartsSize => Parts.Sum(p => p.Size);
    }

    private async Task<(WriterState State, byte[] Tail, string ETag)?> ReadStateAsync(string stateKey, CancellationToken cancellationToken)
    {
        byte[] raw;
        string etag;
        try
        {
            (raw, etag) = await GetObjectAsync(stateKey, cancellationToken);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        var length = BinaryPrimitives.ReadInt32BigEndian(raw);
        var state = JsonSerializer.Deserialize(raw.AsSpan(4, length), S3DriverJson.Default.WriterState)!;
        return (state, raw[(4 + length)..], etag);
    }

    /// <summary>Writes the state conditionally on the ETag last seen (or on there being none); null when someone else changed it.</summary>
    private async Task<string?> WriteStateAsync(string stateKey, WriterState state, ReadOnlyMemory<byte> tail, string? etag, bool mustBeAbsent, CancellationToken cancellationToken)
    {
        var header = JsonSerializer.SerializeToUtf8Bytes(state, S3DriverJson.Default.WriterState);
        var raw = new byte[4 + header.Length + tail.Length];
        BinaryPrimitives.WriteInt32BigEndian(raw, header.Length);
        header.CopyTo(raw, 4);
        tail.Span.CopyTo(raw.AsSpan(4 + header.Length));
        try
        {
            return await PutObjectAsync(stateKey, raw, mustBeAbsent ? "*" : null, mustBeAbsent ? null : etag, cancellationToken);
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.NotFound or HttpStatusCode.Conflict)
        {
            return null;
        }
    }

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
        AmazonS3Exception { StatusCode: HttpStatusCode.NotFound } => new PathNotFoundException(Name, path, e),
        AmazonS3Exception { StatusCode: HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized } s =>
            new StorageUnavailableException(Name, path, $"access denied: {s.ErrorCode}", e),
        AmazonS3Exception s when (int)s.StatusCode >= 500 => new StorageUnavailableException(Name, path, $"{(int)s.StatusCode} {s.ErrorCode}", e),
        AmazonServiceException { StatusCode: HttpStatusCode.ServiceUnavailable or HttpStatusCode.InternalServerError } s =>
            new StorageUnavailableException(Name, path, $"{(int)s.StatusCode} {s.ErrorCode}", e),
        HttpRequestException or TimeoutException or AmazonClientException => new StorageUnavailableException(Name, path, e.Message, e),
        _ => null,
    };

    public void Dispose() => client.Dispose();

    /// <summary>A response stream that disposes its response with it.</summary>
    private sealed class OwningStream(Stream inner, IDisposable owner) : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                owner.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>Uploads parts as they fill and keeps the session's state object; see the class summary. One request at a time.</summary>
    private sealed class Writer : IStorageWriter
    {
        private readonly S3Driver driver;
        private readonly string path;
        private readonly string stateKey;
        private readonly MemoryStream buffer = new();
        private WriterState state;
        private string? etag;
        private long leaseRenewedAt;
        private bool ended;

        /// <param name="etag">The state object's ETag; null for a writer that only gathers (seeding a new session).</param>
        public Writer(S3Driver driver, string path, string stateKey, WriterState state, string? etag, byte[] tail, CancellationToken _)
        {
            this.driver = driver;
            this.path = path;
            this.stateKey = stateKey;
            this.state = state;
            this.etag = etag;
            buffer.Write(tail);
            leaseRenewedAt = driver.time.GetTimestamp();
        }

        private string ObjectKey => driver.Key(path);

        public long Size => state.PartsSize + buffer.Length;

        /// <summary>The state with its parts so far and the bytes after them, for a seeding writer.</summary>
        public WriterState Snapshot(out byte[] tail)
        {
            tail = buffer.ToArray();
            return state;
        }

        public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            while (!data.IsEmpty)
            {
                var room = driver.partSize - (int)buffer.Length;
                var piece = data[..Math.Min(room, data.Length)];
                buffer.Write(piece.Span);
                data = data[piece.Length..];
                if (buffer.Length >= driver.partSize) await Step(() => UploadBufferAsPartAsync(cancellationToken));
            }
            if (etag is not null && driver.time.GetElapsedTime(leaseRenewedAt) >= LeaseRenewAfter) await Step(() => SaveAsync(keepLease: true, cancellationToken));
        }

        public async Task TruncateAsync(long size, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            ArgumentOutOfRangeException.ThrowIfNegative(size);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(size, Size);
            var partsSize = state.PartsSize;
            if (size >= partsSize)
            {
                buffer.SetLength(size - partsSize);
                buffer.Position = buffer.Length;
                await Step(() => SaveAsync(keepLease: true, cancellationToken));
                return;
            }
            await Step(async () =>
            {
                // Parts cannot be read back: complete what there is at the writer's key, read the kept prefix from
                // it into a new upload, and delete it again.
                await UploadBufferAsPartAsync(cancellationToken, force: true);
                await driver.client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
                {
                    BucketName = driver.bucket, Key = ObjectKey, UploadId = state.UploadId,
                    PartETags = state.Parts.Select(p => new PartETag(p.Number, p.ETag)).ToList(),
                }, cancellationToken);
                state = state with { UploadId = null, Parts = [] };
                buffer.SetLength(0);
                if (size > 0)
                {
                    using var response = await driver.client.GetObjectAsync(new GetObjectRequest
                    {
                        BucketName = driver.bucket, Key = ObjectKey, ByteRange = new ByteRange(0, size - 1),
                    }, cancellationToken);
                    var chunk = new byte[81920];
                    int read;
                    while ((read = await response.ResponseStream.ReadAsync(chunk, cancellationToken)) > 0)
                    {
                        buffer.Write(chunk, 0, read);
                        if (buffer.Length >= driver.partSize) await UploadBufferAsPartAsync(cancellationToken);
                    }
                }
                await driver.client.DeleteObjectAsync(driver.bucket, ObjectKey, cancellationToken);
                await SaveAsync(keepLease: true, cancellationToken);
            });
        }

        public Task CloseAsync(CancellationToken cancellationToken) => End(() => SaveAsync(keepLease: false, cancellationToken));

        public Task CancelAsync(CancellationToken cancellationToken) => End(async () =>
        {
            buffer.SetLength(0);
            if (state.UploadId is { } uploadId) await driver.AbortQuietlyAsync(ObjectKey, uploadId);
            await driver.client.DeleteObjectAsync(driver.bucket, stateKey, cancellationToken);
            await driver.client.DeleteObjectAsync(driver.bucket, ObjectKey, cancellationToken);
        });

        public Task CommitAsync(CancellationToken cancellationToken) => End(async () =>
        {
            await PublishAsync(ObjectKey, cancellationToken);
            await driver.client.DeleteObjectAsync(driver.bucket, stateKey, cancellationToken);
        });

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
                if (state.Parts.Count == 0)
                {
                    // Never filled a part: the bytes are all here, and go straight to the destination.
                    await SaveAsync(keepLease: true, cancellationToken);
                    await driver.PutObjectAsync(driver.Key(destinationPath), buffer.GetBuffer().AsMemory(0, (int)buffer.Length), null, null, cancellationToken);
                    // The writer's path is gone afterwards, also when the session began from an object committed there.
                    await driver.client.DeleteObjectAsync(driver.bucket, ObjectKey, cancellationToken);
                }
                else
                {
                    await PublishAsync(ObjectKey, cancellationToken);
                    await driver.CopyAsync(path, destinationPath, cancellationToken);
                    await driver.client.DeleteObjectAsync(driver.bucket, ObjectKey, cancellationToken);
                }
                await driver.client.DeleteObjectAsync(driver.bucket, stateKey, cancellationToken);
            });
        }

        /// <summary>Makes the bytes the object at <paramref name="key"/>, checking first that the session is still this writer's.</summary>
        private async Task PublishAsync(string key, CancellationToken cancellationToken)
        {
            if (state.Parts.Count == 0)
            {
                await SaveAsync(keepLease: true, cancellationToken);
                await driver.PutObjectAsync(key, buffer.GetBuffer().AsMemory(0, (int)buffer.Length), null, null, cancellationToken);
                return;
            }
            await UploadBufferAsPartAsync(cancellationToken, force: true);
            await SaveAsync(keepLease: true, cancellationToken);
            await driver.client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = driver.bucket, Key = key, UploadId = state.UploadId,
                PartETags = state.Parts.Select(p => new PartETag(p.Number, p.ETag)).ToList(),
            }, cancellationToken);
        }

        private async Task UploadBufferAsPartAsync(CancellationToken cancellationToken, bool force = false)
        {
            if (buffer.Length == 0 || (!force && buffer.Length < driver.partSize)) return;
            if (state.UploadId is null)
            {
                var create = new InitiateMultipartUploadRequest { BucketName = driver.bucket, Key = ObjectKey };
                driver.Describe(create.Metadata);
                if (driver.options.ServerSideEncryption.Length > 0)
                {
                    create.ServerSideEncryptionMethod = ServerSideEncryptionMethod.FindValue(driver.options.ServerSideEncryption);
                    if (!string.IsNullOrEmpty(driver.options.KmsKeyId)) create.ServerSideEncryptionKeyManagementServiceKeyId = driver.options.KmsKeyId;
                }
                state = state with { UploadId = (await driver.client.InitiateMultipartUploadAsync(create, cancellationToken)).UploadId };
            }
            var number = state.Parts.Count == 0 ? 1 : state.Parts[^1].Number + 1;
            var bytes = buffer.ToArray();
            var response = await driver.client.UploadPartAsync(new UploadPartRequest
            {
                BucketName = driver.bucket, Key = ObjectKey, UploadId = state.UploadId, PartNumber = number,
                InputStream = new MemoryStream(bytes, writable: false), UseChunkEncoding = false,
            }, cancellationToken);
            state = state with { Parts = [.. state.Parts, new Part(number, response.ETag, bytes.Length)] };
            buffer.SetLength(0);
        }

        /// <summary>Writes the state (parts and tail) on the ETag it last wrote: a lost lease or a deleted session fails it.</summary>
        private async Task SaveAsync(bool keepLease, CancellationToken cancellationToken)
        {
            var next = state with
            {
                Owner = keepLease ? state.Owner : null,
                LeaseUntil = keepLease ? driver.time.GetUtcNow() + LeaseDuration : DateTimeOffset.MinValue,
            };
            var written = await driver.WriteStateAsync(stateKey, next, buffer.GetBuffer().AsMemory(0, (int)buffer.Length), etag, mustBeAbsent: false, cancellationToken);
            if (written is null)
            {
                // Deleted (its folder removed) or taken over after the lease ran out.
                if (await driver.ReadStateAsync(stateKey, cancellationToken) is null) throw new PathNotFoundException(driver.Name, path);
                throw new PathBusyException(driver.Name, path);
            }
            state = next;
            etag = written;
            leaseRenewedAt = driver.time.GetTimestamp();
        }

        private async Task Step(Func<Task> step)
        {
            try
            {
                await step();
            }
            catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchUpload")
            {
                throw new PathNotFoundException(driver.Name, path, e);
            }
            catch (Exception e) when (driver.Translate(e, path) is { } translated)
            {
                throw translated;
            }
        }

        private async Task End(Func<Task> step)
        {
            ObjectDisposedException.ThrowIf(ended, this);
            ended = true;
            await Step(step);
        }

        public async ValueTask DisposeAsync()
        {
            if (ended) return;
            try
            {
                await CloseAsync(CancellationToken.None);
            }
            catch (Exception e) when (e is StorageDriverException or AmazonServiceException)
            {
                // Best effort, as for the Azure writer: what was not closed is what the client was not told it has.
            }
        }
    }
}

/// <summary>The writer state kept beside an object being written, by generated code (the Native AOT build has no reflection-based serializer).</summary>
[JsonSerializable(typeof(S3Driver.WriterState))]
internal sealed partial class S3DriverJson : JsonSerializerContext;
