using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ShadowRegistry.Benchmarks;

/// <summary>The request failed (unexpected status or transport error): counted as an error.</summary>
public sealed class BenchmarkRequestException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The server answered, but with wrong data or state: counted as a correctness violation.</summary>
public sealed class CorrectnessViolationException(string message) : Exception(message);

/// <summary>The OCI distribution calls the scenarios make, over one pooled HttpClient per server.</summary>
public sealed class RegistryClient : IDisposable
{
    public const string ManifestMediaType = "application/vnd.oci.image.manifest.v1+json";
    public const string ConfigMediaType = "application/vnd.oci.image.config.v1+json";
    public const string LayerMediaType = "application/vnd.oci.image.layer.v1.tar";

    private static readonly string ManifestAccept = string.Join(", ",
        ManifestMediaType,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json");

    private readonly HttpClient http;

    public RegistryClient(Uri baseAddress)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = true,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            MaxConnectionsPerServer = 1024,
        };
        http = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(5) };
    }

    /// <summary>The push mode the server gets under <see cref="PushMode.Auto"/>: POST ?digest= if it answers 201.</summary>
    public async Task<PushMode> ProbeMonolithicPostAsync(CancellationToken cancellationToken)
    {
        var blob = new BlobSpec(BlobSpec.SeedFor(0, 0), 1024);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v2/bench/probe/blobs/uploads/?digest={blob.Digest}")
        {
            Content = new GeneratedContent(blob.Seed, 0, blob.Length),
        };
        using var response = await http.SendAsync(request, cancellationToken);
        switch (response.StatusCode)
        {
            case HttpStatusCode.Created:
                return PushMode.Post;
            case HttpStatusCode.Accepted:
                // The server opened a session and ignored the body: cancel that session.
                if (response.Headers.Location is { } location)
                {
                    using var delete = await http.DeleteAsync(Resolve(location), cancellationToken);
                }
                return PushMode.PostPut;
            default:
                throw await Fail(response, "probe POST ?digest=");
        }
    }

    /// <summary>Pushes a whole blob in one request body (POST ?digest=, or POST then PUT ?digest=).</summary>
    public async Task PushBlobAsync(string repository, BlobSpec blob, PushMode mode, CancellationToken cancellationToken)
    {
        if (mode == PushMode.Post)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"v2/{repository}/blobs/uploads/?digest={blob.Digest}")
            {
                Content = new GeneratedContent(blob.Seed, 0, blob.Length),
            };
            using var response = await Send(request, cancellationToken);
            if (response.StatusCode != HttpStatusCode.Created) throw await Fail(response, "POST ?digest=");
            return;
        }

        var location = await StartUploadAsync(repository, cancellationToken);
        using var put = new HttpRequestMessage(HttpMethod.Put, WithDigest(location, blob.Digest))
        {
            Content = new GeneratedContent(blob.Seed, 0, blob.Length),
        };
        using var putResponse = await Send(put, cancellationToken);
        if (putResponse.StatusCode != HttpStatusCode.Created) throw await Fail(putResponse, "PUT ?digest= (monolithic)");
    }

    /// <summary>POST, then PATCH chunks with Content-Range, then an empty PUT ?digest=.</summary>
    public async Task<int> PushBlobChunkedAsync(string repository, BlobSpec blob, long chunkBytes, CancellationToken cancellationToken)
    {
        var requests = 1;
        var location = await StartUploadAsync(repository, cancellationToken);
        for (long offset = 0; offset < blob.Length; offset += chunkBytes)
        {
            var length = Math.Min(chunkBytes, blob.Length - offset);
            using var patch = new HttpRequestMessage(HttpMethod.Patch, location)
            {
                Content = new GeneratedContent(blob.Seed, offset, length),
            };
            patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{offset + length - 1}");
            using var response = await Send(patch, cancellationToken);
            requests++;
            if (response.StatusCode != HttpStatusCode.Accepted) throw await Fail(response, $"PATCH {offset}-{offset + length - 1}");
            location = response.Headers.Location is { } next ? Resolve(next) : throw new BenchmarkRequestException("PATCH answered 202 without Location");
        }
        using var put = new HttpRequestMessage(HttpMethod.Put, WithDigest(location, blob.Digest))
        {
            Content = new ByteArrayContent([]),
        };
        put.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var putResponse = await Send(put, cancellationToken);
        requests++;
        if (putResponse.StatusCode != HttpStatusCode.Created) throw await Fail(putResponse, "PUT ?digest= (closing)");
        return requests;
    }

    private async Task<Uri> StartUploadAsync(string repository, CancellationToken cancellationToken)
    {
        using var post = new HttpRequestMessage(HttpMethod.Post, $"v2/{repository}/blobs/uploads/")
        {
            Content = new ByteArrayContent([]),
        };
        using var response = await Send(post, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Accepted) throw await Fail(response, "POST /blobs/uploads/");
        return response.Headers.Location is { } location ? Resolve(location) : throw new BenchmarkRequestException("POST /blobs/uploads/ answered 202 without Location");
    }

    /// <summary>HEAD of a blob: its status and Content-Length (null when absent).</summary>
    public async Task<(HttpStatusCode Status, long? Length)> HeadBlobAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}");
        using var response = await Send(request, cancellationToken);
        return (response.StatusCode, response.Content.Headers.ContentLength);
    }

    /// <summary>GETs a blob, streaming and hashing it; a wrong length or digest is a violation.</summary>
    public async Task<long> PullBlobAsync(string repository, BlobSpec blob, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/blobs/{blob.Digest}");
        using var response = await Send(request, cancellationToken, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK) throw await Fail(response, "GET blob");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(BlobData.BufferSize);
        long total = 0;
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            int n;
            while ((n = await body.ReadAsync(buffer.AsMemory(0, BlobData.BufferSize), cancellationToken)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                total += n;
            }
        }
        catch (IOException e)
        {
            throw new BenchmarkRequestException($"GET blob: body broke off after {total} bytes: {e.Message}", e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        var digest = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
        if (total != blob.Length || digest != blob.Digest)
        {
            throw new CorrectnessViolationException($"GET {repository} blob {blob.Digest}: got {total} bytes with digest {digest}, expected {blob.Length} bytes");
        }
        return total;
    }

    /// <summary>Small blobs (config) pushed from memory, outside the timed part.</summary>
    public async Task PushSmallBlobAsync(string repository, byte[] bytes, string digest, PushMode mode, CancellationToken cancellationToken)
    {
        var location = mode == PushMode.Post
            ? new Uri(http.BaseAddress!, $"v2/{repository}/blobs/uploads/?digest={digest}")
            : WithDigest(await StartUploadAsync(repository, cancellationToken), digest);
        using var request = new HttpRequestMessage(mode == PushMode.Post ? HttpMethod.Post : HttpMethod.Put, location)
        {
            Content = new ByteArrayContent(bytes),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await Send(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Created) throw await Fail(response, "push config blob");
    }

    /// <summary>PUT of a manifest by tag; the server must echo the manifest's digest.</summary>
    public async Task PutManifestAsync(string repository, string tag, byte[] manifest, string digest, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"v2/{repository}/manifests/{tag}")
        {
            Content = new ByteArrayContent(manifest),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(ManifestMediaType);
        using var response = await Send(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Created) throw await Fail(response, "PUT manifest");
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && values.FirstOrDefault() is { } echoed && echoed != digest)
        {
            throw new CorrectnessViolationException($"PUT {repository}:{tag} answered Docker-Content-Digest {echoed}, expected {digest}");
        }
    }

    /// <summary>GET of a manifest by tag; the body must hash to the digest that was pushed under that tag.</summary>
    public async Task<long> GetManifestAsync(string repository, string tag, string digest, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{tag}");
        request.Headers.TryAddWithoutValidation("Accept", ManifestAccept);
        using var response = await Send(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK) throw await Fail(response, "GET manifest");
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var actual = BlobData.DigestOf(body);
        if (actual != digest) throw new CorrectnessViolationException($"GET {repository}:{tag} returned a manifest with digest {actual}, expected {digest}");
        return body.Length;
    }

    /// <summary>HEAD of a manifest by tag: 200, and the digest header must be the digest pushed under that tag.</summary>
    public async Task<long> HeadManifestAsync(string repository, string tag, string digest, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/manifests/{tag}");
        request.Headers.TryAddWithoutValidation("Accept", ManifestAccept);
        using var response = await Send(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK) throw await Fail(response, "HEAD manifest");
        var echoed = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
        if (echoed != digest) throw new CorrectnessViolationException($"HEAD {repository}:{tag} answered Docker-Content-Digest {echoed ?? "none"}, expected {digest}");
        return 0;
    }

    /// <summary>GET tags/list; every tag in <paramref name="expected"/> must be listed.</summary>
    public async Task<long> ListTagsAsync(string repository, IReadOnlyCollection<string> expected, CancellationToken cancellationToken)
    {
        using var response = await Send(new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/tags/list"), cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK) throw await Fail(response, "GET tags/list");
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        using var json = JsonDocument.Parse(body);
        var tags = json.RootElement.TryGetProperty("tags", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Select(t => t.GetString()).ToHashSet()
            : [];
        var missing = expected.Where(t => !tags.Contains(t)).ToList();
        if (missing.Count > 0) throw new CorrectnessViolationException($"tags/list of {repository} lacks pushed tag(s) {string.Join(", ", missing.Take(5))}");
        return body.Length;
    }

    /// <summary>
    /// ShadowRegistry's management API: creates (201) or updates (200) speculative change <paramref name="id"/> with
    /// <paramref name="ahead"/> (nearest first). Distribution has no such API.
    /// </summary>
    public async Task PutChangeAsync(string id, IReadOnlyList<string> ahead, CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string>? labels = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"api/v1/changes/{id}")
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
            {
                ["ahead"] = ahead, ["ttl"] = "1h", ["labels"] = labels ?? new Dictionary<string, string>(),
            })),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await Send(request, cancellationToken);
        if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.OK)) throw await Fail(response, "PUT change");
    }

    /// <summary>A small OCI image manifest (config + one layer); <paramref name="index"/> makes each one distinct.</summary>
    public static byte[] BuildManifest(string configDigest, long configSize, BlobSpec layer, int index)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteNumber("schemaVersion", 2);
            writer.WriteString("mediaType", ManifestMediaType);
            writer.WriteStartObject("config");
            writer.WriteString("mediaType", ConfigMediaType);
            writer.WriteString("digest", configDigest);
            writer.WriteNumber("size", configSize);
            writer.WriteEndObject();
            writer.WriteStartArray("layers");
            writer.WriteStartObject();
            writer.WriteString("mediaType", LayerMediaType);
            writer.WriteString("digest", layer.Digest);
            writer.WriteNumber("size", layer.Length);
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteStartObject("annotations");
            writer.WriteString("org.shadowregistry.benchmark.index", index.ToString(System.Globalization.CultureInfo.InvariantCulture));
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        return stream.ToArray();
    }

    public static byte[] ConfigBlob { get; } = Encoding.UTF8.GetBytes(
        """{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}""");

    private async Task<HttpResponseMessage> Send(HttpRequestMessage request, CancellationToken cancellationToken, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        try
        {
            return await http.SendAsync(request, completion, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new BenchmarkRequestException($"{request.Method} {request.RequestUri?.AbsolutePath}: {e.Message}", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BenchmarkRequestException($"{request.Method} {request.RequestUri?.AbsolutePath}: timed out", e);
        }
    }

    private static async Task<BenchmarkRequestException> Fail(HttpResponseMessage response, string what)
    {
        var body = "";
        try
        {
            body = await response.Content.ReadAsStringAsync();
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            // The status is the message.
        }
        if (body.Length > 300) body = body[..300] + "…";
        return new BenchmarkRequestException($"{what} {response.RequestMessage?.RequestUri?.AbsolutePath}: {(int)response.StatusCode} {body}".TrimEnd());
    }

    private Uri Resolve(Uri location) => location.IsAbsoluteUri ? location : new Uri(http.BaseAddress!, location);

    private static Uri WithDigest(Uri location, string digest) =>
        new(location.AbsoluteUri + (string.IsNullOrEmpty(location.Query) ? "?" : "&") + "digest=" + digest);

    public void Dispose() => http.Dispose();
}
