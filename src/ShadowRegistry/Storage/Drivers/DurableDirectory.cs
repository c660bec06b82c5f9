using System.Runtime.InteropServices;

namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// fsync for folders. A rename or a new file is part of its folder's data: until the folder is synced, a power loss
/// may forget a write that was already acknowledged. .NET cannot open a folder as a file, hence the two libc calls.
/// </summary>
public static partial class DurableDirectory
{
    private const int ReadOnly = 0;
    private const int CloseOnExec = 0x80000; // O_CLOEXEC: the same value on x86-64 and arm64 Linux

    /// <summary>Flushes the folder's entries to disk. A no-op where folders cannot be synced this way (Windows).</summary>
    public static void Sync(string directory)
    {
        if (OperatingSystem.IsWindows()) return;
        var fd = Open(directory, ReadOnly | CloseOnExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open folder '{directory}' to sync it (errno {errno})", errno);
        }
        try
        {
            if (FSync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"cannot sync folder '{directory}' (errno {errno})", errno);
            }
        }
        finally
        {
            Close(fd);
        }
    }

    /// <summary>Creates the folder and any missing parents, syncing the parent of each one created so they survive a crash.</summary>
    public static void Create(string directory)
    {
        if (Directory.Exists(directory)) return;
        var missing = new Stack<string>();
        for (var current = directory; current is not null && !Directory.Exists(current); current = Path.GetDirectoryName(current)) missing.Push(current);
        Directory.CreateDirectory(directory);
        foreach (var created in missing) Sync(Path.GetDirectoryName(created)!);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
