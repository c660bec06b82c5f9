namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>A fresh folder under the temp path, deleted (best effort, but thoroughly) on dispose.</summary>
public sealed class ScratchDirectory : IDisposable
{
    public ScratchDirectory(string prefix = "e2e")
    {
        // Short paths: podman puts sockets under its runroot, and a unix socket path is limited to 107 bytes.
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "shadowregistry-e2e", $"{prefix}-{Guid.NewGuid().ToString("N")[..12]}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>Creates (if needed) and returns a sub-folder.</summary>
    public string Folder(params string[] parts)
    {
        var folder = System.IO.Path.Combine([Path, .. parts]);
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>A path inside this folder that is not created.</summary>
    public string FilePath(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose() => DeleteTree(Path);

    /// <summary>Deletes a tree, first making read-only folders writable (image layers often contain some).</summary>
    public static void DeleteTree(string path)
    {
        if (!Directory.Exists(path))
        {
            return;
        }
        try
        {
            Directory.Delete(path, recursive: true);
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Retry below after fixing permissions.
        }
        try
        {
            MakeWritable(new DirectoryInfo(path));
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A leftover temp folder must not fail a test.
        }
    }

    private static void MakeWritable(DirectoryInfo directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        const UnixFileMode Owner = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        try
        {
            if ((directory.UnixFileMode & Owner) != Owner)
            {
                directory.UnixFileMode |= Owner;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }
        foreach (var child in directory.EnumerateDirectories("*", new EnumerationOptions { AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true }))
        {
            MakeWritable(child);
        }
    }
}
