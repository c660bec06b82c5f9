using System.Text;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// Tags: one file per tag holding the digest it points at, replaced atomically on every push. Writes and
/// compare-and-delete of one tag take that tag's lock file, so a delete that means "remove this tag if it still
/// points at A" can never remove a newer push of the same tag that landed between its read and its delete.
/// </summary>
public sealed class TagStore(StorageLayout layout)
{
    public async Task SetAsync(RepositoryName repository, string tag, Digest digest, CancellationToken cancellationToken)
    {
        await using var held = await LockAsync(repository, tag, cancellationToken);
        await AtomicFile.WriteAllBytesAsync(layout.Tag(repository, tag), Encoding.ASCII.GetBytes(digest.ToString()), cancellationToken);
    }

    public async Task<Digest?> ResolveAsync(RepositoryName repository, string tag, CancellationToken cancellationToken)
    {
        var content = await AtomicFile.TryReadAllBytesAsync(layout.Tag(repository, tag), cancellationToken);
        return content is not null && Digest.TryParse(Encoding.ASCII.GetString(content), out var digest) ? digest : null;
    }

    /// <summary>Removes the tag whatever it points at (DELETE by tag): no read precedes it, so it needs no lock.</summary>
    public bool Delete(RepositoryName repository, string tag) => AtomicFile.TryDeleteDurably(layout.Tag(repository, tag));

    /// <summary>Removes the tag only if it still points at <paramref name="expected"/>; true when it did.</summary>
    public async Task<bool> DeleteIfAsync(RepositoryName repository, string tag, Digest expected, CancellationToken cancellationToken)
    {
        await using var held = await LockAsync(repository, tag, cancellationToken);
        if (await ResolveAsync(repository, tag, cancellationToken) != expected) return false;
        return AtomicFile.TryDeleteDurably(layout.Tag(repository, tag));
    }

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

    private Task<FileLock> LockAsync(RepositoryName repository, string tag, CancellationToken cancellationToken)
    {
        var path = layout.TagLock(repository, tag);
        DurableDirectory.Create(Path.GetDirectoryName(path)!);
        return FileLock.AcquireAsync(path, cancellationToken);
    }
}
