namespace ShadowRegistry.Upstream;

/// <summary>A configured upstream registry, validated.</summary>
public sealed record UpstreamRegistry(string Name, Uri BaseUri, string? Username, string? Password, bool IsDefault, bool OfficialImagesPrefix)
{
    public bool HasCredentials => !string.IsNullOrEmpty(Username);

    public override string ToString() => Name;
}

/// <summary>A repository as the upstream knows it.</summary>
public sealed record UpstreamRepository(UpstreamRegistry Registry, string Name)
{
    public string PullScope => $"repository:{Name}:pull";

    public override string ToString() => $"{Registry.Name}/{Name}";
}
