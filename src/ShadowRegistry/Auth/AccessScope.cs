namespace ShadowRegistry.Auth;

public static class AccessActions
{
    public const string Pull = "pull";
    public const string Push = "push";
    public const string Delete = "delete";
    public const string All = "*";
}

public static class ResourceTypes
{
    public const string Repository = "repository";
    public const string Registry = "registry";

    /// <summary>The resource name that, with type <see cref="Registry"/> and action "*", stands for the catalog.</summary>
    public const string Catalog = "catalog";
}

/// <summary>
/// One resource and the actions on it, as in Docker token scopes (<c>repository:team/app:pull,push</c>,
/// <c>registry:catalog:*</c>) and in the token's <c>access</c> claim entries.
/// </summary>
public sealed record AccessScope(string Type, string Name, IReadOnlyList<string> Actions)
{
    /// <summary>
    /// Parses <c>type[(class)]:name:actions</c>. The name is what lies between the first and the last colon, so a
    /// name with a colon in it (a registry host with a port) survives; the resource class is dropped.
    /// </summary>
    public static bool TryParse(string? text, out AccessScope scope)
    {
        scope = null!;
        if (string.IsNullOrEmpty(text)) return false;
        var first = text.IndexOf(':');
        var last = text.LastIndexOf(':');
        if (first <= 0 || last == first || last == text.Length - 1) return false;
        var type = text[..first];
        var paren = type.IndexOf('(');
        if (paren > 0 && type.EndsWith(')')) type = type[..paren];
        var name = text[(first + 1)..last];
        if (name.Length == 0) return false;
        var actions = text[(last + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (actions.Length == 0) return false;
        scope = new AccessScope(type, name, actions.Distinct(StringComparer.Ordinal).ToArray());
        return true;
    }

    /// <summary>
    /// Every scope in the values given, each value holding one or more space-separated scopes (the GET form repeats
    /// the parameter, the OAuth2 POST form separates by spaces). Unparsable entries are dropped; actions on the same
    /// resource are merged.
    /// </summary>
    public static IReadOnlyList<AccessScope> ParseAll(IEnumerable<string?> values)
    {
        var merged = new Dictionary<(string Type, string Name), List<string>>();
        foreach (var value in values)
        {
            if (string.IsNullOrWhiteSpace(value)) continue;
            foreach (var part in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (!TryParse(part, out var scope)) continue;
                if (!merged.TryGetValue((scope.Type, scope.Name), out var actions)) merged[(scope.Type, scope.Name)] = actions = [];
                foreach (var action in scope.Actions)
                {
                    if (!actions.Contains(action)) actions.Add(action);
                }
            }
        }
        return merged.Select(entry => new AccessScope(entry.Key.Type, entry.Key.Name, entry.Value)).ToArray();
    }

    /// <summary>Whether this grant allows <paramref name="action"/> on the resource; "*" allows every action.</summary>
    public bool Allows(string type, string name, string action) =>
        string.Equals(Type, type, StringComparison.Ordinal)
        && string.Equals(Name, name, StringComparison.Ordinal)
        && (Actions.Contains(action) || Actions.Contains(AccessActions.All));

    public override string ToString() => $"{Type}:{Name}:{string.Join(',', Actions)}";

    public static AccessScope Catalog { get; } = new(ResourceTypes.Registry, ResourceTypes.Catalog, [AccessActions.All]);
}
