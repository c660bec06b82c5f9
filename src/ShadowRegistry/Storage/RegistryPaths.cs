using ShadowRegistry.Domain;

namespace ShadowRegistry.Storage;

/// <summary>
/// The driver paths of repository metadata, one pure function each: the only place that knows this part of the
/// layout (README, "Storage layout"). With the filesystem driver a path is the file below the storage root.
/// Repository folders hold only "_" folders besides the folders of longer names, and no name component starts with
/// "_", so the two never collide.
/// </summary>
public static class RegistryPaths
{
    public const string Repositories = "/repositories";

    /// <summary>A repository's folder: below <see cref="Repositories"/>, or below its change's overlay.</summary>
    public static string Repository(RepositoryName name) =>
        name.Overlay is { } overlay ? $"{OverlayRoot(overlay)}/repositories/{name.Value}" : Repository(name.Value);

    /// <summary>The folder of a repository given by its (valid) name; the catalog walks names before parsing them.</summary>
    public static string Repository(string name) => $"{Repositories}/{name}";

    public static string LayersDirectory(RepositoryName name) => $"{Repository(name)}/_layers";

    public static string LayerLink(RepositoryName name, Digest digest) => $"{LayersDirectory(name)}/{digest.Algorithm}/{digest.Hex}";

    /// <summary>A blob pulled through from upstream and kept: served like a local blob but not part of the local repository.</summary>
    public static string CacheLink(RepositoryName name, Digest digest) => $"{Repository(name)}/_cache/{digest.Algorithm}/{digest.Hex}";

    public static string ManifestsDirectory(string repository) => $"{Repository(repository)}/_manifests";

    public static string ManifestsDirectory(RepositoryName name) => $"{Repository(name)}/_manifests";

    /// <summary>Holds one folder per digest algorithm, each holding one record per manifest.</summary>
    public static string RevisionsDirectory(string repository) => $"{ManifestsDirectory(repository)}/revisions";

    public static string ManifestRevision(RepositoryName name, Digest digest) => $"{ManifestsDirectory(name)}/revisions/{digest.Algorithm}/{digest.Hex}";

    public static string TagsDirectory(string repository) => $"{ManifestsDirectory(repository)}/tags";

    public static string TagsDirectory(RepositoryName name) => $"{ManifestsDirectory(name)}/tags";

    public static string Tag(RepositoryName name, string tag) => $"{TagsDirectory(name)}/{tag}";

    public static string ReferrersDirectory(RepositoryName name, Digest subject) => $"{Repository(name)}/_referrers/{subject.Algorithm}/{subject.Hex}";

    public static string Referrer(RepositoryName name, Digest subject, Digest referrer) =>
        $"{ReferrersDirectory(name, subject)}/{referrer.Algorithm}-{referrer.Hex}";

    /// <summary>Speculative changes, one folder each: the change's record and its overlays.</summary>
    public const string Changes = "/changes";

    public static string ChangeFolder(ChangeId id) => $"{Changes}/{id.Value}";

    /// <summary>What the change is (ahead, labels, expiry, generation), replaced atomically on every update.</summary>
    public static string ChangeRecord(ChangeId id) => $"{ChangeFolder(id)}/change";

    /// <summary>One incarnation's overlay: its repositories' tags, records and links, as below <see cref="Repositories"/>.</summary>
    public static string OverlayRoot(Overlay overlay) => $"{ChangeFolder(overlay.Change)}/{overlay.Generation}";

    public static string OverlayRepositories(Overlay overlay) => $"{OverlayRoot(overlay)}/repositories";

    /// <summary>Every blob once, content-addressed and shared by all repositories.</summary>
    public static string Blob(Digest digest) => $"/blobs/{digest.Algorithm}/{digest.Hex[..2]}/{digest.Hex}";

    /// <summary>Garbage collection's own objects: per-blob use records and the run lease.</summary>
    public const string Gc = "/gc";

    /// <summary>
    /// When the blob was last used, or that a collection is deleting it (<see cref="BlobTouches"/>). One flat folder:
    /// records come and go with their blobs, and a filesystem folder never shrinks, so fewer folders leave less behind.
    /// </summary>
    public static string BlobTouch(Digest digest) => $"{TouchedPrefix}{digest.Algorithm}/{digest.Hex}";

    private const string TouchedPrefix = $"{Gc}/touched/";

    /// <summary>Held by the collection running now, so two processes sharing the store do not both collect.</summary>
    public const string GcLease = $"{Gc}/lease";

    /// <summary>Objects being written that will become a blob once verified (manifests, upstream downloads).</summary>
    public const string Temporaries = "/tmp";

    public static string NewTemporary() => $"{Temporaries}/{Guid.NewGuid():N}";

    /// <summary>Upload sessions, one folder each, so any process sharing the store can continue one.</summary>
    public const string Uploads = "/uploads";

    public static string Upload(string id) => $"{Uploads}/{id}";

    /// <summary>The bytes received so far.</summary>
    public static string UploadData(string id) => $"{Upload(id)}/data";

    /// <summary>Names the session's repository; present exactly while the session is live, removed first when it ends.</summary>
    public static string UploadMarker(string id) => $"{Upload(id)}/repository";

    /// <summary>When the session started (round-trip time format), for whoever wants to know how old it is.</summary>
    public static string UploadStartedAt(string id) => $"{Upload(id)}/startedat";

    private const string TagsMarker = "/_manifests/tags/";

    /// <summary>
    /// The filesystem driver's lock file for a path changed by conditional operations: a blob use record's is one of
    /// "/gc/locks/&lt;alg&gt;-&lt;2 hex&gt;"; a tag's is
    /// "_manifests/locks/&lt;tag&gt;", kept apart so it is never listed as a tag, and where every earlier version of the
    /// registry locks it. Null (the driver's default) for anything else.
    /// </summary>
    public static string? LockOf(string path)
    {
        // Blob use records: 256 shared lock files per algorithm rather than one beside each record, which would be left
        // behind for every blob ever used (a lock file is never removed).
        if (path.StartsWith(TouchedPrefix, StringComparison.Ordinal) && path.LastIndexOf('/') is var slash && slash >= TouchedPrefix.Length && path.Length - slash > 3)
            return $"{Gc}/locks/{path[TouchedPrefix.Length..slash]}-{path[(slash + 1)..(slash + 3)]}";
        var marker = path.LastIndexOf(TagsMarker, StringComparison.Ordinal);
        if (marker <= Repositories.Length || !path.StartsWith(Repositories + "/", StringComparison.Ordinal)) return null;
        var tag = path[(marker + TagsMarker.Length)..];
        return tag.Length == 0 || tag.Contains('/') ? null : $"{path[..marker]}/_manifests/locks/{tag}";
    }
}
