namespace ShadowRegistry.Storage.Drivers;

/// <summary>The "maybe missing" forms callers want most, over the driver's PathNotFound.</summary>
public static class StorageDriverExtensions
{
    /// <summary>The content, or null when the path holds none (a concurrent delete is a normal outcome).</summary>
    public static async Task<byte[]?> TryGetContentAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken)
    {
        if (driver is IReadsMissingCheaply cheap) return await cheap.TryGetContentAsync(path, cancellationToken);
        try
        {
            return await driver.GetContentAsync(path, cancellationToken);
        }
        catch (PathNotFoundException)
        {
            return null;
        }
    }

    public static async Task<StorageFileInfo?> TryStatAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken)
    {
        try
        {
            return await driver.StatAsync(path, cancellationToken);
        }
        catch (PathNotFoundException)
        {
            return null;
        }
    }

    public static async Task<bool> FileExistsAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken) =>
        await driver.TryStatAsync(path, cancellationToken) is { IsDirectory: false };

    public static async Task<bool> DirectoryExistsAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken) =>
        await driver.TryStatAsync(path, cancellationToken) is { IsDirectory: true };

    /// <summary>Every child name, in ordinal order.</summary>
    public static Task<IReadOnlyList<string>> ListAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken) =>
        driver.ListAsync(path, startAfter: null, int.MaxValue, cancellationToken);

    /// <summary>Every child name in ordinal order; none when the directory does not exist.</summary>
    public static async Task<IReadOnlyList<string>> ListOrEmptyAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken)
    {
        try
        {
            return await driver.ListAsync(path, cancellationToken);
        }
        catch (PathNotFoundException)
        {
            return [];
        }
    }

    /// <summary>Deletes the path; false when there was nothing to delete.</summary>
    public static async Task<bool> TryDeleteAsync(this IStorageDriver driver, string path, CancellationToken cancellationToken)
    {
        try
        {
            await driver.DeleteAsync(path, cancellationToken);
            return true;
        }
        catch (PathNotFoundException)
        {
            return false;
        }
    }
}
