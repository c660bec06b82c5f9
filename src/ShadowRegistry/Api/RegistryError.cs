using System.Text.Json;
using System.Text.Json.Serialization;

namespace ShadowRegistry.Api;

/// <summary>An error the client caused or must know about, rendered as the OCI error body with its status.</summary>
public sealed class RegistryError : Exception
{
    public RegistryError(int status, string code, string message, object? detail = null) : base(message)
    {
        Status = status;
        Code = code;
        Detail = detail;
    }

    public int Status { get; }
    public string Code { get; }
    public object? Detail { get; }

    /// <summary>Headers the response must carry besides the body (e.g. Range on a 416).</summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>();

    public static RegistryError BlobUnknown(object digest) => new(404, "BLOB_UNKNOWN", "blob unknown to registry", new { digest = digest.ToString() });
    public static RegistryError BlobUploadUnknown(string? id) => new(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", new { uuid = id });
    public static RegistryError BlobUploadInvalid(string message) => new(400, "BLOB_UPLOAD_INVALID", message);
    public static RegistryError DigestInvalid(string message, object? detail = null) => new(400, "DIGEST_INVALID", message, detail);
    public static RegistryError SizeInvalid(string message) => new(400, "SIZE_INVALID", message);
    public static RegistryError ManifestBlobUnknown(object digest) => new(400, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob or manifest unknown to this repository", new { digest = digest.ToString() });
    public static RegistryError ManifestInvalid(string message, int status = 400) => new(status, "MANIFEST_INVALID", message);
    public static RegistryError ManifestUnknown(string reference) => new(404, "MANIFEST_UNKNOWN", "manifest unknown", new { reference });
    public static RegistryError NameInvalid(string? name) => new(400, "NAME_INVALID", "invalid repository name", new { name });
    public static RegistryError NameUnknown(object name) => new(404, "NAME_UNKNOWN", "repository name not known to registry", new { name = name.ToString() });
    public static RegistryError TagInvalid(string? tag) => new(400, "TAG_INVALID", "invalid tag or reference", new { reference = tag });
    public static RegistryError PaginationInvalid(string message) => new(400, "PAGINATION_NUMBER_INVALID", message);
    public static RegistryError Unsupported(string message, int status = 405) => new(status, "UNSUPPORTED", message);
    public static RegistryError NotFound(string path) => new(404, "NOT_FOUND", "no such endpoint", new { path });

    public static RegistryError RangeInvalid(long currentSize)
    {
        var error = new RegistryError(416, "BLOB_UPLOAD_INVALID", "content range does not continue the upload");
        error.Headers["Range"] = UploadRange(currentSize);
        return error;
    }

    /// <summary>A blob Range that lies wholly past the blob's end.</summary>
    public static RegistryError RangeNotSatisfiable(long size)
    {
        var error = new RegistryError(416, "RANGE_INVALID", "requested range is not satisfiable", new { size });
        error.Headers["Content-Range"] = $"bytes */{size}";
        return error;
    }

    /// <summary>The Range header value for an upload holding <paramref name="size"/> bytes (inclusive end, "0-0" when empty, as Docker does).</summary>
    public static string UploadRange(long size) => $"0-{Math.Max(0, size - 1)}";

    public Task WriteAsync(HttpResponse response)
    {
        response.StatusCode = Status;
        foreach (var (key, value) in Headers) response.Headers[key] = value;
        response.ContentType = "application/json; charset=utf-8";
        var body = new ErrorBody([new ErrorEntry(Code, Message, Detail)]);
        return response.WriteAsync(JsonSerializer.Serialize(body, ErrorJson.Options));
    }

    private sealed record ErrorBody([property: JsonPropertyName("errors")] ErrorEntry[] Errors);

    private sealed record ErrorEntry(
        [property: JsonPropertyName("code")] string Code,
        [property: JsonPropertyName("message")] string Message,
        [property: JsonPropertyName("detail"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Detail);

    private static class ErrorJson
    {
        public static readonly JsonSerializerOptions Options = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
    }
}
