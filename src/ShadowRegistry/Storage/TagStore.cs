using System.Text;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>Tags: one file per tag holding the digest it points at, replaced atomically on every push.</summary>
public sealed class TagStore(StorageLayout layout)
{
    public Task SetAsync(RepositoryName repository, string tag, Digest digest, CancellationToken cancellationToken) =>
        AtomicFile.WriteAllBytesAsync(layout.Tag(repository, tag), Encoding.ASCII.GetBytes(digest.ToString()), cancellationToken);

    public async Task<Digest?> ResolveAsync(RepositoryName repository, string tag, CancellationToken cancellationToken)
    {
        var content = await AtomicFile.TryReadAllBytesAsync(layout.Tag(repository, tag), cancellationToken);
        return content is not null && Digest.TryParse(Encoding.ASCII.GetString(content), out var digest) ? digest : null;
    }

    public bool Delete(RepositoryName repository, string tag) => AtomicFile.TryDelete(layout.Tag(repository, tag));

    /// <summary>All tags, in the ordinal order the tag list and its pagination use.</summary>
    public List<string> List(RepositoryName repository)
    {
        var directory = layout.TagsDirectory(repository);
        if (!Directory.Exists(directory)) return [];
        var tags = new List<string>();
        foreach (var path in Directory.EnumerateFiles(directory))
        {
            var name = Path.GetFileName(path);
            if (!StorageLayout.IsTemporary(name)) tags.Add(name);
        }
        tags.Sort(StringComparer.Ordinal);
        return tags;
    }

    public async Task<List<string>> TagsPointingAtAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        var result = new List<string>();
        foreach (var tag in List(repository))
            if (await ResolveAsync(repository, tag, cancellationToken) == digest) result.Add(tag);
        return result;
    }
}
