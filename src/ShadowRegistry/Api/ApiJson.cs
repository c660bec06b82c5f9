using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using ShadowRegistry.Changes;

namespace ShadowRegistry.Api;

/// <summary>
/// The API's JSON bodies, by generated code rather than reflection (the Native AOT build has no reflection-based
/// serializer). Web defaults, as ASP.NET Core's and the changes API's own options always were: camelCase names,
/// case-insensitive reading, nulls written.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(TagList))]
[JsonSerializable(typeof(RepositoryList))]
[JsonSerializable(typeof(ChangeList))]
[JsonSerializable(typeof(ChangeDescription))]
[JsonSerializable(typeof(PromotedTags))]
[JsonSerializable(typeof(ChangeEndpoints.ChangeRequest))]
[JsonSerializable(typeof(ChangeEndpoints.PromoteRequest))]
internal sealed partial class ApiJson : JsonSerializerContext
{
    /// <summary>ASP.NET Core's own choice for response bodies (no \u escapes of HTML-sensitive characters), which tag lists and the catalog always had.</summary>
    public static readonly ApiJson Relaxed = new(new JsonSerializerOptions(JsonSerializerDefaults.Web) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}

internal sealed record TagList(string Name, List<string> Tags);

internal sealed record RepositoryList(List<string> Repositories);

internal sealed record ChangeList(List<ChangeDescription> Changes);

internal sealed record ChangeViewAddress(string Path, string? Host);

internal sealed record ChangeCredential(string Username, string Password);

internal sealed record PromotedTags(IReadOnlyList<PromotedTag> Promoted);

/// <summary>A change as the changes API describes it (docs/changes-api.md); tags and the credential only where they apply.</summary>
internal sealed record ChangeDescription(
    string Id,
    IReadOnlyList<string> Ahead,
    IReadOnlyList<SkippedChange> Skipped,
    IReadOnlyDictionary<string, string> Labels,
    DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt,
    ChangeViewAddress View)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ChangeTag>? Tags { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ChangeCredential? Credential { get; init; }
}
