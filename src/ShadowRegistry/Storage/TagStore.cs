using System.Text;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Storage;

/// <summary>
/// Tags: one object per tag holding the digest it points at, replaced atomically on every push. Every change that
/// depends on what the tag holds goes through the driver's conditional operations (the filesystem driver holds the
/// tag's lock file for them), so a delete that means "remove this tag if it still points at A" can never remove a
/// newer push of the same tag that landed between its read and its delete.
/// </summary>
public sealed class TagStore(IStorageDriver driver)
{
    /// <summary>Points the tag at <paramref name="digest"/>, whatever it pointed at before.</summary>
    public async Task SetAsync(RepositoryName repository, string tag, Digest digest, CancellationToken cancellationToken)
    {
        var path = RegistryPaths.Tag(repository, tag);
        var content = Encoding.ASCII.GetBytes(digest.ToString());
        // A write that is ordered with the compare-and-deletes of this tag: each attempt that fails does so because
        // another change of the tag landed in between, so some writer always makes progress.
        while (true)
        {
            var current = await driver.GetVersionedAsync(path, cancellationToken);
            var written = current is null
                ? await driver.PutIfAbsentAsync(path, content, cancellationToken)
                : await driver.PutIfVersionMatchesAsync(path, content, current.Version, cancellationToken);
            if (written) return;
        }
    }

    public async Task<Digest?> ResolveAsync(RepositoryName repository, string tag, CancellationToken cancellationToken)
    {
        var content = await driver.TryGetContentAsync(RegistryPaths.Tag(repository, tag), cancellationToken);
        return Parse(content);
    }

    /// <summary>When the tag was last pointed somewhere (its object's modification time), or null without the tag.</summary>
    public async Task<DateTimeOffset?> PushedAtAsync(RepositoryName repository, string tag, CancellationToken cancellationToken) =>
        (await driver.TryStatAsync(RegistryPaths.Tag(repository, tag), cancellationToken))?.ModifiedTime;

    /// <summary>Removes the tag whatever it points at (DELETE by tag): no read precedes it, so it needs no condition.</summary>
    public Task<bool> DeleteAsync(RepositoryName repository, string tag, CancellationToken cancellationToken) =>
        driver.TryDeleteAsync(RegistryPaths.Tag(repository, tag), cancellationToken);

    /// <summary>Removes the tag only if it still points at <paramref name="expected"/>; true when it did.</summary>
    public async Task<bool> DeleteIfAsync(RepositoryName repository, string tag, Digest expected, CancellationToken cancellationToken)
    {
        var path = RegistryPaths.Tag(repository, tag);
        while (true)
        {
            var current = await driver.GetVersionedAsync(path, cancellationToken);
            if (current is null || Parse(current.Content) != expected) return false;
            if (await driver.DeleteIfVersionMatchesAsync(path, current.Version, cancellationToken)) return true;
            // Changed since the read: look again, it may point elsewhere now (or at the same digest once more).
        }
    }

    /// <summary>All tags, in the ordinal order the tag list and its pagination use.</summary>
    public async Task<List<string>> ListAsync(RepositoryName repository, CancellationToken cancellationToken) =>
        [.. await driver.ListOrEmptyAsync(RegistryPaths.TagsDirectory(repository), cancellationToken)];

    public async Task<List<string>> TagsPointingAtAsync(RepositoryName repository, Digest digest, CancellationToken cancellationToken)
    {
        var result = new List<string>();
        foreach (var tag in await ListAsync(repository, cancellationToken))
            if (await ResolveAsync(repository, tag, cancellationToken) == digest) result.Add(tag);
        return result;
    }

    private static Digest? Parse(byte[]? content) =>
        content is not null && Digest.TryParse(Encoding.ASCII.GetString(content), out var digest) ? digest : null;
}
