using System.Text.Json.Nodes;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Api;

/// <summary>
/// The one place where domain exceptions become HTTP: status, OCI error code, message, detail and headers. The
/// layers below the API throw <see cref="RegistryException"/>s and know nothing of this.
/// </summary>
public static class RegistryErrorMapper
{
    /// <summary>The error response for <paramref name="exception"/>, or null for a type with no mapping (a bug, answered as a 500).</summary>
    public static RegistryError? TryMap(RegistryException exception)
    {
        var message = exception.Message;
        return exception switch
        {
            BlobUnknownException e => new(404, "BLOB_UNKNOWN", message, RegistryError.DetailOf(("digest", e.Digest.ToString()))),
            BlobUploadUnknownException e => new(404, "BLOB_UPLOAD_UNKNOWN", message, RegistryError.DetailOf(("uuid", e.UploadId))),
            UploadRangeException e => WithHeader(new(416, "BLOB_UPLOAD_INVALID", message), "Range", RegistryError.UploadRange(e.CurrentSize)),
            BlobRangeNotSatisfiableException e => WithHeader(new(416, "RANGE_INVALID", message, RegistryError.DetailOf(("size", e.Size))), "Content-Range", $"bytes */{e.Size}"),
            DigestInvalidException e => new(400, "DIGEST_INVALID", message,
                e is { Expected: { } expected, Actual: { } actual } ? RegistryError.DetailOf(("expected", expected.ToString()), ("actual", actual.ToString())) : null),
            SizeInvalidException => new(400, "SIZE_INVALID", message),
            ManifestBlobUnknownException e => new(400, "MANIFEST_BLOB_UNKNOWN", message, RegistryError.DetailOf(("digest", e.Digest.ToString()))),
            ManifestInvalidException => new(400, "MANIFEST_INVALID", message),
            ManifestTooLargeException => new(StatusCodes.Status413PayloadTooLarge, "MANIFEST_INVALID", message),
            ManifestUnknownException e => new(404, "MANIFEST_UNKNOWN", message, RegistryError.DetailOf(("reference", e.Reference))),
            NameInvalidException e => new(400, "NAME_INVALID", message, RegistryError.DetailOf(("name", e.Name))),
            NameUnknownException e => new(404, "NAME_UNKNOWN", message, RegistryError.DetailOf(("name", e.Name.ToString()))),
            TagInvalidException e => new(400, "TAG_INVALID", message, RegistryError.DetailOf(("reference", e.Tag))),
            PaginationInvalidException => new(400, "PAGINATION_NUMBER_INVALID", message),
            UpstreamUnavailableException => new(503, "UNAVAILABLE", message),
            UpstreamBadContentException => new(502, "UNAVAILABLE", message),
            BlobBeingCollectedException e => new(503, "UNAVAILABLE", message, RegistryError.DetailOf(("digest", e.Digest.ToString()))),
            StorageFullException => new(StatusCodes.Status507InsufficientStorage, "UNAVAILABLE", message),
            ChangeInvalidException => new(400, "CHANGE_INVALID", message),
            ChangeUnknownException e => new(404, "NAME_UNKNOWN", message, RegistryError.DetailOf(("change", e.Id.Value), ("expired", e.Expired))),
            PromotionConflictException e => new(409, "CHANGE_CONFLICT", message, RegistryError.DetailOf(("mismatches", new JsonArray([.. e.Mismatches.Select(m =>
                RegistryError.DetailOf(("repository", m.Repository), ("tag", m.Tag), ("expected", m.Expected), ("actual", m.Actual)))])))),
            _ => null,
        };
    }

    private static RegistryError WithHeader(RegistryError error, string name, string value)
    {
        error.Headers[name] = value;
        return error;
    }
}
