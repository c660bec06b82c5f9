using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A driver that forwards every call to another: tests derive from it and override only what they change (a fault,
/// a redirect, a count). Optional capabilities of the inner driver (<see cref="IReadsMissingCheaply"/> and the like)
/// are not forwarded, so the registry takes its general path.
/// </summary>
public class DelegatingStorageDriver(IStorageDriver inner) : IStorageDriver
{
    protected IStorageDriver Inner { get; } = inner;

    public virtual string Name => Inner.Name;
    public virtual Task<byte[]> GetContentAsync(string path, CancellationToken cancellationToken) => Inner.GetContentAsync(path, cancellationToken);
    public virtual Task PutContentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        Inner.PutContentAsync(path, content, cancellationToken);
    public virtual Task<VersionedContent?> GetVersionedAsync(string path, CancellationToken cancellationToken) => Inner.GetVersionedAsync(path, cancellationToken);
    public virtual Task<bool> PutIfAbsentAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        Inner.PutIfAbsentAsync(path, content, cancellationToken);
    public virtual Task<bool> PutIfVersionMatchesAsync(string path, ReadOnlyMemory<byte> content, StorageVersion expected, CancellationToken cancellationToken) =>
        Inner.PutIfVersionMatchesAsync(path, content, expected, cancellationToken);
    public virtual Task<bool> DeleteIfVersionMatchesAsync(string path, StorageVersion expected, CancellationToken cancellationToken) =>
        Inner.DeleteIfVersionMatchesAsync(path, expected, cancellationToken);
    public virtual Task<Stream> ReaderAsync(string path, long offset, CancellationToken cancellationToken) => Inner.ReaderAsync(path, offset, cancellationToken);
    public virtual Task<IStorageWriter> WriterAsync(string path, bool append, CancellationToken cancellationToken) => Inner.WriterAsync(path, append, cancellationToken);
    public virtual Task<StorageFileInfo> StatAsync(string path, CancellationToken cancellationToken) => Inner.StatAsync(path, cancellationToken);
    public virtual Task<IReadOnlyList<string>> ListAsync(string path, string? startAfter, int maxCount, CancellationToken cancellationToken) =>
        Inner.ListAsync(path, startAfter, maxCount, cancellationToken);
    public virtual Task MoveAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken) =>
        Inner.MoveAsync(sourcePath, destinationPath, cancellationToken);
    public virtual Task DeleteAsync(string path, CancellationToken cancellationToken) => Inner.DeleteAsync(path, cancellationToken);
    public virtual Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken) =>
        Inner.RedirectUrlAsync(path, method, cancellationToken);
}
