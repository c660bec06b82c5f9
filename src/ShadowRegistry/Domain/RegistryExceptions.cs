namespace ShadowRegistry.Domain;

// What storage, manifests and upstream code can refuse or fail with, as typed domain exceptions. They carry the
// data an error report needs but no HTTP: Api/RegistryErrorMapper alone decides status, OCI code and headers.

/// <summary>A request the registry refuses or cannot serve, for a reason the client should be told.</summary>
public abstract class RegistryException(string message, Exception? innerException = null) : Exception(message, innerException);

/// <summary>The repository does not hold (or may not serve) this blob.</summary>
public sealed class BlobUnknownException(Digest digest) : RegistryException("blob unknown to registry")
{
    public Digest Digest { get; } = digest;
}

/// <summary>No live upload session has this id in this repository.</summary>
public sealed class BlobUploadUnknownException(string? uploadId) : RegistryException("blob upload unknown to registry")
{
    public string? UploadId { get; } = uploadId;
}

/// <summary>
/// A chunk that does not continue the upload exactly (or arrives while another request writes to the session).
/// <see cref="CurrentSize"/> is what the session holds, so the client can resume from there.
/// </summary>
public sealed class UploadRangeException(long currentSize) : RegistryException("content range does not continue the upload")
{
    public long CurrentSize { get; } = currentSize;
}

/// <summary>A byte range request none of whose ranges overlaps the blob of <see cref="Size"/> bytes.</summary>
public sealed class BlobRangeNotSatisfiableException(long size) : RegistryException("requested range is not satisfiable")
{
    public long Size { get; } = size;
}

/// <summary>A digest that is malformed, missing, unsupported, or does not match the content (then with both digests).</summary>
public sealed class DigestInvalidException(string message, Digest? expected = null, Digest? actual = null) : RegistryException(message)
{
    public Digest? Expected { get; } = expected;
    public Digest? Actual { get; } = actual;
}

/// <summary>The content is not as long as the client said it would be.</summary>
public sealed class SizeInvalidException(string message) : RegistryException(message);

/// <summary>A pushed manifest references a blob or child manifest that neither this repository nor its upstream has.</summary>
public sealed class ManifestBlobUnknownException(Digest digest) : RegistryException("manifest references a blob or manifest unknown to this repository")
{
    public Digest Digest { get; } = digest;
}

/// <summary>A pushed manifest that cannot be parsed or does not agree with what it references.</summary>
public sealed class ManifestInvalidException(string message) : RegistryException(message);

/// <summary>A pushed manifest over the configured size limit: refused before it is read in full.</summary>
public sealed class ManifestTooLargeException(int limit) : RegistryException($"manifest exceeds the limit of {limit} bytes")
{
    public int Limit { get; } = limit;
}

/// <summary>
/// No manifest by this reference; or, with <see cref="UnacceptedMediaType"/>, one exists but is of a type the client
/// said it does not accept, which for that client is the same as none.
/// </summary>
public sealed class ManifestUnknownException(string reference, string? unacceptedMediaType = null)
    : RegistryException(unacceptedMediaType is null ? "manifest unknown" : $"manifest is of type {unacceptedMediaType}, which the Accept header does not include")
{
    public string Reference { get; } = reference;
    public string? UnacceptedMediaType { get; } = unacceptedMediaType;
}

/// <summary>A repository name outside the OCI grammar (as written, or as it would be once resolved).</summary>
public sealed class NameInvalidException(string? name) : RegistryException("invalid repository name")
{
    public string? Name { get; } = name;
}

/// <summary>No repository of this name, locally or upstream.</summary>
public sealed class NameUnknownException(RepositoryName name) : RegistryException("repository name not known to registry")
{
    public RepositoryName Name { get; } = name;
}

/// <summary>A reference that is neither a valid tag nor digest-like.</summary>
public sealed class TagInvalidException(string? tag) : RegistryException("invalid tag or reference")
{
    public string? Tag { get; } = tag;
}

/// <summary>A page size that is not a non-negative number.</summary>
public sealed class PaginationInvalidException(string message) : RegistryException(message);

/// <summary>The upstream could not answer (down, timing out, circuit open, or failing): worth retrying later.</summary>
public sealed class UpstreamUnavailableException(string upstream, string reason)
    : RegistryException($"upstream registry {upstream} is unavailable: {reason}")
{
    public string Upstream { get; } = upstream;
    public string Reason { get; } = reason;
}

/// <summary>The upstream answered with content that does not verify; it is never passed on.</summary>
public sealed class UpstreamBadContentException(string upstream, string reason)
    : RegistryException($"upstream registry {upstream} sent invalid content: {reason}")
{
    public string Upstream { get; } = upstream;
    public string Reason { get; } = reason;
}

/// <summary>
/// The storage is out of space or over quota. Not the request's fault: what it wrote has been rolled back, so the
/// client may retry once space is freed.
/// </summary>
public sealed class StorageFullException(Exception? innerException = null) : RegistryException("registry storage is full; try again later", innerException)
{
    /// <summary>
    /// Whether <paramref name="exception"/> or one of its inner exceptions is an out-of-space or over-quota I/O error.
    /// .NET sets an IOException's HResult to the raw errno on Unix (ENOSPC 28, EDQUOT 122 on Linux, 69 on macOS) and
    /// to an HRESULT wrapping the Win32 error on Windows (ERROR_HANDLE_DISK_FULL 39, ERROR_DISK_FULL 112).
    /// </summary>
    public static bool IsCause(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is StorageFullException) return true;
            if (e is not IOException) continue;
            var fullOnThisSystem = OperatingSystem.IsWindows()
                ? e.HResult is unchecked((int)0x80070027) or unchecked((int)0x80070070)
                : e.HResult == 28 || e.HResult == (OperatingSystem.IsLinux() ? 122 : 69);
            if (fullOnThisSystem) return true;
        }
        return false;
    }
}

/// <summary>A change id, body or queue the registry cannot take (bad id, bad duration, a cycle in "ahead").</summary>
public sealed class ChangeInvalidException(string message) : RegistryException(message);

/// <summary>No live change has this id; <see cref="Expired"/> when it existed and ran out of time.</summary>
public sealed class ChangeUnknownException(ChangeId id, bool expired = false)
    : RegistryException(expired ? $"change {id} expired" : $"change {id} is unknown")
{
    public ChangeId Id { get; } = id;
    public bool Expired { get; } = expired;
}

/// <summary>A promotion whose expectations about the base tags do not hold; nothing was changed.</summary>
public sealed class PromotionConflictException(IReadOnlyList<PromotionMismatch> mismatches)
    : RegistryException($"promotion refused: {mismatches.Count} base tag(s) are not as expected")
{
    public IReadOnlyList<PromotionMismatch> Mismatches { get; } = mismatches;
}

/// <summary>A base tag that did not hold the digest a promotion expected (null: expected absent / is absent).</summary>
public sealed record PromotionMismatch(string Repository, string Tag, string? Expected, string? Actual);

/// <summary>
/// A blob being written is being deleted by garbage collection right now and the collection did not finish in time:
/// the client may simply retry.
/// </summary>
public sealed class BlobBeingCollectedException(Digest digest) : RegistryException("blob is being garbage-collected; try again")
{
    public Digest Digest { get; } = digest;
}
