namespace ShadowRegistry.Storage.Drivers;

/// <summary>
/// A storage failure a caller can act on, naming the driver and the path. An IOException, so code that already
/// treats I/O failures as such (a client gone, a full disk) keeps doing so.
/// </summary>
public abstract class StorageDriverException(string driverName, string path, string problem, Exception? innerException = null)
    : IOException($"{driverName}: {problem}: {path}", innerException)
{
    public string DriverName { get; } = driverName;

    public string Path { get; } = path;
}

public sealed class PathNotFoundException(string driverName, string path, Exception? innerException = null)
    : StorageDriverException(driverName, path, "path not found", innerException);

public sealed class InvalidPathException(string driverName, string path, string reason)
    : StorageDriverException(driverName, path, $"invalid path ({reason})");

public sealed class InvalidOffsetException(string driverName, string path, long offset)
    : StorageDriverException(driverName, path, $"invalid offset {offset}")
{
    public long Offset { get; } = offset;
}

/// <summary>Another writer (possibly another process) holds the path, or its lock could not be had in time.</summary>
public sealed class PathBusyException(string driverName, string path, Exception? innerException = null)
    : StorageDriverException(driverName, path, "path is busy", innerException);

/// <summary>
/// Out of space or over quota. Carries the original error code as its HResult, so the domain's full-disk check
/// (<see cref="Domain.StorageFullException.IsCause"/>, which reads errno values from IOExceptions) recognises it.
/// </summary>
public sealed class OutOfSpaceException : StorageDriverException
{
    public OutOfSpaceException(string driverName, string path, Exception? innerException = null)
        : base(driverName, path, "storage is full", innerException)
    {
        HResult = innerException?.HResult ?? DiskFullErrno;
    }

    /// <summary>ENOSPC (ERROR_DISK_FULL on Windows): what a driver without an error code of its own reports.</summary>
    private static int DiskFullErrno => OperatingSystem.IsWindows() ? unchecked((int)0x80070070) : 28;
}

/// <summary>
/// The store could not be reached, refused the credentials, or kept failing (an object store's 5xx or throttling after
/// the client's own retries): nothing the caller did wrong, and worth retrying later. The API answers 503.
/// </summary>
public sealed class StorageUnavailableException(string driverName, string path, string problem, Exception? innerException = null)
    : StorageDriverException(driverName, path, $"storage unavailable ({problem})", innerException);
