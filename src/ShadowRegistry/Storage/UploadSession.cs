using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>An upload in progress: its own folder with the bytes received so far and a marker naming its repository.</summary>
public sealed record UploadSession(string Id, RepositoryName Repository, string Directory)
{
    public string DataPath => Path.Combine(Directory, "data");

    /// <summary>Present while the session is live; removed first when it completes or is cancelled.</summary>
    public string InfoPath => Path.Combine(Directory, InfoFileName);

    public const string InfoFileName = "repository";
}
