using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>What a registry holds, read through its own storage driver, so a test means the same on every driver.</summary>
public static class StoredObjects
{
    /// <summary>Every file below <paramref name="path"/> (driver paths); none when there is no such folder.</summary>
    public static async Task<List<string>> FilesBelowAsync(this RegistryServer server, string path)
    {
        var driver = server.Services.GetRequiredService<IStorageDriver>();
        var files = new List<string>();
        foreach (var name in await driver.ListOrEmptyAsync(path, CancellationToken.None))
        {
            var child = StoragePath.Join(path, name);
            if (await driver.DirectoryExistsAsync(child, CancellationToken.None)) files.AddRange(await server.FilesBelowAsync(child));
            else files.Add(child);
        }
        return files;
    }

    /// <summary>The names of the direct children of <paramref name="path"/>.</summary>
    public static async Task<IReadOnlyList<string>> ChildrenAsync(this RegistryServer server, string path) =>
        await server.Services.GetRequiredService<IStorageDriver>().ListOrEmptyAsync(path, CancellationToken.None);
}
