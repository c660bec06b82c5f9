using System.Buffers;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Upstream;

/// <summary>
/// Requests to upstream registries that the registry reads itself: manifests (small, verified against their
/// digest before anyone sees them), blob existence, tag lists, and whole blobs fetched into local storage.
/// Blob bodies for clients are not read here but streamed by <see cref="UpstreamBlobForwarder"/>.
/// </summary>
public sealed class UpstreamClient(IHttpClientFactory clients, IOptions<RegistryOptions> registryOptions, ILogger<UpstreamClient> logger)
{
    public const string HttpClientName = "upstream";

    private const int MaxTagPages = 100;

    private static readonly string[] ManifestTypes = [MediaTypes.OciIndex, MediaTypes.DockerManifestList, MediaTypes.OciManifest, MediaTypes.DockerManifest];

    /// <summary>The manifest, or null when the upstream does not have it (or will not let us see it).</summary>
    public async Task<UpstreamManifest?> GetManifestAsync(UpstreamRepository repository, string reference, bool headOnly,
        IReadOnlyCollection<string> accept, CancellationToken cancellationToken)
    {
        using var request = NewRequest(headOnly ? HttpMethod.Head : HttpMethod.Get, repository, $"manifests/{reference}");
        foreach (var type in accept.Count > 0 ? accept : ManifestTypes) request.Headers.Accept.ParseAdd(type);
        using var response = await SendAsync(request, repository, cancellationToken);
        if (IsMissing(response)) return null;
        if (!response.IsSuccessStatusCode) throw new UpstreamUnavailableException(repository.Registry.Name, $"manifest request answered {(int)response.StatusCode}");

        var mediaType = response.Content.Headers.ContentType?.MediaType ?? MediaTypes.OciManifest;
        Digest? announced = response.Headers.TryGetValues("Docker-Content-Digest", out var values) && Digest.TryParse(values.FirstOrDefault(), out var d) ? d : null;
        Digest? requested = Digest.TryParse(reference, out var r) ? r : null;
        if (headOnly)
        {
            // A HEAD is only as good as its headers; without them, fetch the manifest itself.
            var digest = requested ?? announced;
            if (digest is null || response.Content.Headers.ContentLength is not { } length)
                return await GetManifestAsync(repository, reference, headOnly: false, accept, cancellationToken);
            return new UpstreamManifest(digest.Value, mediaType, length, null);
        }

        var limit = registryOptions.Value.MaxManifestBytes;
        if (response.Content.Headers.ContentLength > limit) throw new UpstreamBadContentException(repository.Registry.Name, "manifest exceeds the size limit");
        var content = await ReadLimitedAsync(await response.Content.ReadAsStreamAsync(cancellationToken), limit, repository, cancellationToken);
        var actual = Digest.Compute((requested ?? announced)?.Algorithm ?? Digest.Sha256, content);
        if ((requested ?? announced) is { } expected && expected != actual)
            throw new UpstreamBadContentException(repository.Registry.Name, $"manifest {reference} has digest {actual}, expected {expected}");
        return new UpstreamManifest(actual, mediaType, content.Length, content);
    }

    /// <summary>The size of a blob the upstream has, or null.</summary>
    public async Task<long?> GetBlobSizeAsync(UpstreamRepository repository, Digest digest, CancellationToken cancellationToken)
    {
        using var request = NewRequest(HttpMethod.Head, repository, $"blobs/{digest}");
        using var response = await SendAsync(request, repository, cancellationToken);
        if (IsMissing(response)) return null;
        if (!response.IsSuccessStatusCode) throw new UpstreamUnavailableException(repository.Registry.Name, $"blob request answered {(int)response.StatusCode}");
        return response.Content.Headers.ContentLength;
    }

    /// <summary>All tags of the upstream repository (following pagination, bounded), or null when it has none.</summary>
    public async Task<List<string>?> GetTagsAsync(UpstreamRepository repository, CancellationToken cancellationToken)
    {
        var tags = new List<string>();
        var path = "tags/list";
        for (var page = 0; page < MaxTagPages && path is not null; page++)
        {
            using var request = NewRequest(HttpMethod.Get, repository, path);
            using var response = await SendAsync(request, repository, cancellationToken);
            if (IsMissing(response)) return page == 0 ? null : tags;
            if (!response.IsSuccessStatusCode) throw new UpstreamUnavailableException(repository.Registry.Name, $"tag list answered {(int)response.StatusCode}");
            using var body = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken: cancellationToken);
            if (body.RootElement.TryGetProperty("tags", out var list) && list.ValueKind == JsonValueKind.Array)
                tags.AddRange(list.EnumerateArray().Select(t => t.GetString()).Where(Tag.IsValid)!);
            path = NextPage(response, repository);
        }
        return tags;
    }

    /// <summary>
    /// Downloads a blob into <paramref name="destination"/>, verifying size and digest, and commits it (publishing it
    /// locally). Throws when the upstream lacks it or sends anything else. With a <paramref name="relay"/>, the bytes
    /// also go to a client as they arrive, except the last piece, which is sent only once the whole blob has
    /// verified and is committed: a client can never receive a complete wrong blob.
    /// </summary>
    public async Task<long> DownloadBlobAsync(UpstreamRepository repository, Digest digest, BlobWriter destination, BlobRelay? relay,
        CancellationToken cancellationToken)
    {
        using var request = NewRequest(HttpMethod.Get, repository, $"blobs/{digest}");
        using var response = await SendAsync(request, repository, cancellationToken);
        if (IsMissing(response)) throw new BlobUnknownException(digest);
        if (!response.IsSuccessStatusCode) throw new UpstreamUnavailableException(repository.Registry.Name, $"blob request answered {(int)response.StatusCode}");
        var announced = response.Content.Headers.ContentLength;
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        var held = ArrayPool<byte>.Shared.Rent(ChunkSize);
        long written = 0;
        try
        {
            if (relay is not null) await relay.StartAsync(announced);
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            var heldCount = 0;
            int read;
            while ((read = await ReadChunkAsync(body, buffer, repository, digest, cancellationToken)) > 0)
            {
                // The disk and the client take their pieces at once: the client's the one before, the disk's this one.
                var storing = destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                if (relay is not null && heldCount > 0) await Task.WhenAll(storing, relay.WriteAsync(held.AsMemory(0, heldCount)));
                else await storing;
                written += read;
                if (relay is null) continue;
                (buffer, held, heldCount) = (held, buffer, read);
            }
            if (announced is { } length && length != written)
                throw new UpstreamBadContentException(repository.Registry.Name, $"blob {digest} is {written} bytes, announced {length}");
            var actual = destination.Digest;
            if (actual != digest) throw new UpstreamBadContentException(repository.Registry.Name, $"blob {digest} has digest {actual}");
            await destination.CommitAsync(digest, written, cancellationToken);
            if (relay is not null && heldCount > 0) await relay.WriteAsync(held.AsMemory(0, heldCount));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(held);
        }
        logger.LogInformation("Fetched {Digest} ({Size} bytes) from {Upstream}", digest, written, repository);
        return written;
    }

    private const int ChunkSize = 128 * 1024;

    private static async Task<int> ReadChunkAsync(Stream body, byte[] buffer, UpstreamRepository repository, Digest digest, CancellationToken cancellationToken)
    {
        try
        {
            return await body.ReadAtLeastAsync(buffer.AsMemory(0, ChunkSize), ChunkSize, throwOnEndOfStream: false, cancellationToken);
        }
        catch (Exception e) when (e is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamBadContentException(repository.Registry.Name, $"blob {digest} download broke off: {e.Message}");
        }
    }

    private static HttpRequestMessage NewRequest(HttpMethod method, UpstreamRepository repository, string path)
    {
        var request = new HttpRequestMessage(method, new Uri(repository.Registry.BaseUri, $"/v2/{repository.Name}/{path}"));
        UpstreamRequestOptions.Tag(request, repository);
        return request;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, UpstreamRepository repository, CancellationToken cancellationToken)
    {
        try
        {
            return await clients.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is HttpRequestException or TimeoutRejectedException or BrokenCircuitException or TaskCanceledException)
        {
            logger.LogWarning("Upstream {Upstream} failed for {Method} {Path}: {Reason}", repository.Registry, request.Method, request.RequestUri?.AbsolutePath, e.Message);
            throw new UpstreamUnavailableException(repository.Registry.Name, e is BrokenCircuitException ? "circuit open after repeated failures" : e.Message);
        }
    }

    /// <summary>Not there, or not ours to see: either way the upstream has nothing to serve for this name.</summary>
    private static bool IsMissing(HttpResponseMessage response) =>
        response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden;

    private static async Task<byte[]> ReadLimitedAsync(Stream body, int limit, UpstreamRepository repository, CancellationToken cancellationToken)
    {
        try
        {
            return await StreamCopy.ReadLimitedAsync(body, limit, cancellationToken)
                ?? throw new UpstreamBadContentException(repository.Registry.Name, "manifest exceeds the size limit");
        }
        catch (Exception e) when (e is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamBadContentException(repository.Registry.Name, $"manifest download broke off: {e.Message}");
        }
    }

    /// <summary>The next page's path relative to the repository, from a Link header, if it stays in this repository.</summary>
    private static string? NextPage(HttpResponseMessage response, UpstreamRepository repository)
    {
        if (!response.Headers.TryGetValues("Link", out var links)) return null;
        var link = links.FirstOrDefault();
        if (link is null) return null;
        var start = link.IndexOf('<');
        var end = link.IndexOf('>');
        if (start < 0 || end <= start) return null;
        var target = link[(start + 1)..end];
        var prefix = $"/v2/{repository.Name}/";
        var uri = new Uri(repository.Registry.BaseUri, target);
        return uri.AbsolutePath.StartsWith(prefix, StringComparison.Ordinal) ? uri.PathAndQuery[prefix.Length..] : null;
    }

    /// <summary>The client's Accept header values for manifests, passed on to the upstream.</summary>
    public static IReadOnlyCollection<string> AcceptedTypes(HttpRequest request) =>
        request.Headers.Accept.SelectMany(v => (v ?? "").Split(',')).Select(v => v.Trim()).Where(v => v.Length > 0).ToList();
}
