using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>An upload in progress: its own folder in the driver with the bytes received so far and a marker naming its repository.</summary>
public sealed record UploadSession(string Id, RepositoryName Repository)
{
    /// <summary>The session's folder (a driver path).</summary>
    public string Directory => RegistryPaths.Upload(Id);

    public string DataPath => RegistryPaths.UploadData(Id);

    /// <summary>Present while the session is live; removed first when it completes or is cancelled.</summary>
    public string MarkerPath => RegistryPaths.UploadMarker(Id);
}
