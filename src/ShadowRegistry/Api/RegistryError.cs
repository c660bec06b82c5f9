using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace ShadowRegistry.Api;

/// <summary>
/// An HTTP error response: the OCI error body with its status and headers. Thrown directly only for what is HTTP
/// by nature (unknown endpoints, methods, authentication); domain errors become one in <see cref="RegistryErrorMapper"/>.
/// </summary>
public sealed class RegistryError : Exception
{
    public RegistryError(int status, string code, string message, JsonNode? detail = null) : base(message)
    {
        Status = status;
        Code = code;
        Detail = detail;
    }

    public int Status { get; }
    public string Code { get; }
    public JsonNode? Detail { get; }

    /// <summary>Headers the response must carry besides the body (e.g. Range on a 416).</summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>();

    public static RegistryError Unsupported(string message, int status = 405) => new(status, "UNSUPPORTED", message);
    public static RegistryError NotFound(string path) => new(404, "NOT_FOUND", "no such endpoint", DetailOf(("path", path)));

    /// <summary>
    /// An error's detail object, its members in the order given; members whose value is null are left out. A JSON
    /// node rather than an anonymous object, so the body is written without reflection (the Native AOT build has none).
    /// </summary>
    public static JsonObject DetailOf(params (string Name, JsonNode? Value)[] members)
    {
        var detail = new JsonObject();
        foreach (var (name, value) in members)
            if (value is not null) detail[name] = value;
        return detail;
    }

    /// <summary>The Range header value for an upload holding <paramref name="size"/> bytes (inclusive end, "0-0" when empty, as Docker does).</summary>
    public static string UploadRange(long size) => $"0-{Math.Max(0, size - 1)}";

    public Task WriteAsync(HttpResponse response)
    {
        response.StatusCode = Status;
        foreach (var (key, value) in Headers) response.Headers[key] = value;
        response.ContentType = "application/json; charset=utf-8";
        var body = new ErrorBody([new ErrorEntry(Code, Message, Detail)]);
        return response.WriteAsync(JsonSerializer.Serialize(body, ErrorJson.Default.ErrorBody));
    }

    internal sealed record ErrorBody([property: JsonPropertyName("errors")] ErrorEntry[] Errors);

    internal sealed record ErrorEntry(
        [property: JsonPropertyName("code")] string Code,
        [property: JsonPropertyName("message")] string Message,
        [property: JsonPropertyName("detail"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] JsonNode? Detail);

}

/// <summary>The error body, by generated code rather than reflection (the Native AOT build has none).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RegistryError.ErrorBody))]
internal sealed partial class ErrorJson : JsonSerializerContext;
