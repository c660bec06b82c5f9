using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>
/// The response header that says which layer answered a read: "change/&lt;id&gt;", "local" or "upstream/&lt;name&gt;"
/// (several, comma-separated, for a tag list merged from several layers). Debugging a gate queue starts here.
/// </summary>
public static class SourceHeader
{
    public const string Name = "ShadowRegistry-Source";

    /// <param name="source">What the repository said (its layers joined with '+' for merged answers).</param>
    public static void Set(HttpResponse response, string source, RepositoryTarget target) => response.Headers[Name] = Describe(source, target);

    /// <summary>The header's value: the layers that answered, as the operator page shows them too.</summary>
    public static string Describe(string source, RepositoryTarget target) =>
        string.Join(", ", source.Split('+').Select(part => Layer(part, target)).Distinct());

    private static string Layer(string source, RepositoryTarget target) => source switch
    {
        "local" => "local",
        // Kept from the upstream (the pull-through cache, the upstream manifest cache) or fetched now: the upstream's content.
        "upstream" or "cache" => target.Upstream is { } upstream ? $"upstream/{upstream.Registry.Name}" : "local",
        _ => source,
    };
}
