using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// The repositories that exist. A repository exists once anything was written into it; there is no record to
/// create first, so concurrent first pushes cannot race on one. Its folder holds "_" folders, which no name
/// component can start with, so repository folders and their data folders never collide.
/// </summary>
public sealed class RepositoryCatalog(StorageLayout layout)
{
    public bool Exists(RepositoryName repository)
    {
        var root = layout.Repository(repository);
        return Directory.Exists(Path.Combine(root, "_manifests")) || Directory.Exists(Path.Combine(root, "_layers"));
    }

    /// <summary>All repository names in ordinal order.</summary>
    public List<string> List()
    {
        var names = new List<string>();
        Walk(layout.RepositoriesRoot, "", names);
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    private static void Walk(string directory, string prefix, List<string> names)
    {
        IEnumerable<string> children;
        try
        {
            children = Directory.EnumerateDirectories(directory).ToList();
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }
        var isRepository = false;
        foreach (var child in children)
        {
            var name = Path.GetFileName(child);
            if (name.StartsWith('_'))
            {
                isRepository |= name is "_manifests" or "_layers";
                continue;
            }
            Walk(child, prefix.Length == 0 ? name : $"{prefix}/{name}", names);
        }
        if (isRepository && RepositoryName.TryParse(prefix, out _)) names.Add(prefix);
    }
}
