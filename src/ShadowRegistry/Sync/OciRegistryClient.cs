using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Sync;

/// <summary>A manifest as fetched: its exact bytes, media type and digest.</summary>
public sealed record RemoteManifest(byte[] Content, string MediaType, Digest Digest);

/// <summary>A referrer of a manifest: its digest and the descriptor a referrers list gives for it.</summary>
public sealed record Referrer(Digest Digest, JsonObject Descriptor);

/// <summary>A registry call that failed for a reason worth reporting against the tag being synced.</summary>
public sealed class RegistryCallException(string message, HttpStatusCode? status = null, Exception? inner = null) : Exception(message, inner)
{
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>
/// A small OCI Distribution client for sync and check: tags, manifests, blobs, mounts, referrers, against any registry
/// (this one, a change's view, CNCF distribution, a public registry). Token auth (Docker's Bearer challenge) and Basic
/// auth; retries with jittered back-off honouring Retry-After on 429 and 5xx and on dropped connections; an optional
/// request rate limit. Streams blobs, never buffers them.
/// </summary>
public sealed class OciRegistryClient : IDisposable
{
    public static readonly string[] ManifestTypes =
        [MediaTypes.OciManifest, MediaTypes.OciIndex, MediaTypes.DockerManifest, MediaTypes.DockerManifestList];

    private readonly HttpClient http;
    private readonly Uri registry;
    private readonly (string User, string Password)? credentials;
    private readonly int maxAttempts;
    private readonly TimeSpan minInterval;
    private readonly SemaphoreSlim rate = new(1, 1);
    private readonly Dictionary<string, string> tokens = new(StringComparer.Ordinal);
    private DateTimeOffset nextRequest = DateTimeOffset.MinValue;
    private bool basic;
    private bool? referrersApi;

    /// <summary>The registry this client talks to.</summary>
    public Uri Registry => registry;

    /// <summary>Counts of writes made (blob uploads, mounts, manifest puts, deletes), for "a second sync writes nothing".</summary>
    public int Writes { get; private set; }

    public OciRegistryClient(Uri registry, (string User, string Password)? credentials, HttpMessageHandler? handler = null, bool insecure = false,
        int maxAttempts = 5, double? requestsPerSecond = null)
    {
        this.registry = registry;
        this.credentials = credentials;
        this.maxAttempts = maxAttempts;
        minInterval = requestsPerSecond is > 0 ? TimeSpan.FromSeconds(1 / requestsPerSecond.Value) : TimeSpan.Zero;
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = true,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            SslOptions = insecure ? new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true } : new(),
        };
        http = new HttpClient(handler) { BaseAddress = registry, Timeout = Timeout.InfiniteTimeSpan };
    }

    public async Task<IReadOnlyList<string>> ListTagsAsync(string repository, CancellationToken cancellationToken)
    {
        var result = new List<string>();
        string? next = $"v2/{repository}/tags/list?n=1000";
        while (next is not null)
        {
            using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, next), repository, "pull", cancellationToken);
            if (response.StatusCode == HttpStatusCode.NotFound) return result;
            await EnsureAsync(response, $"tag list of {repository}");
            using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken));
            if (document.RootElement.TryGetProperty("tags", out var tags) && tags.ValueKind == JsonValueKind.Array)
                result.AddRange(tags.EnumerateArray().Select(t => t.GetString()!).Where(t => t is not null));
            next = NextLink(response);
        }
        return result;
    }

    /// <summary>Repositories under <paramref name="prefix"/> (all for ""), from the catalog.</summary>
    public async Task<IReadOnlyList<string>> ListRepositoriesAsync(string prefix, CancellationToken cancellationToken)
    {
        var result = new List<string>();
        string? next = "v2/_catalog?n=1000";
        while (next is not null)
        {
            using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, next), null, null, cancellationToken);
            await EnsureAsync(response, "catalog");
            using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken));
            if (document.RootElement.TryGetProperty("repositories", out var repositories) && repositories.ValueKind == JsonValueKind.Array)
                result.AddRange(repositories.EnumerateArray().Select(r => r.GetString()!)
                    .Where(r => r is not null && (prefix.Length == 0 || r.StartsWith(prefix + "/", StringComparison.Ordinal) || r == prefix)));
            next = NextLink(response);
        }
        return result;
    }

    /// <summary>The digest a tag points at (HEAD, falling back to GET), or null when there is none.</summary>
    public async Task<Digest?> ResolveAsync(string repository, string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => ManifestRequest(HttpMethod.Head, repository, reference), repository, "pull", cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        await EnsureAsync(response, $"manifest {repository}:{reference}");
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && Digest.TryParse(values.First(), out var digest)) return digest;
        return (await GetManifestAsync(repository, reference, cancellationToken))?.Digest;
    }

    public async Task<RemoteManifest?> GetManifestAsync(string repository, string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => ManifestRequest(HttpMethod.Get, repository, reference), repository, "pull", cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        await EnsureAsync(response, $"manifest {repository}:{reference}");
        var content = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var digest = Digest.Compute(Digest.Sha256, content);
        if (Digest.TryParse(reference, out var asked) && asked != Digest.Compute(asked.Algorithm, content))
            throw new RegistryCallException($"manifest {repository}@{reference} came back with other content ({digest})");
        var mediaType = response.Content.Headers.ContentType?.MediaType ?? MediaTypes.OciManifest;
        return new RemoteManifest(content, mediaType, Digest.TryParse(reference, out var d) ? d : digest);
    }

    public async Task PutManifestAsync(string repository, string reference, RemoteManifest manifest, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() =>
        {
            var content = new ByteArrayContent(manifest.Content);
            content.Headers.ContentType = new MediaTypeHeaderValue(manifest.MediaType);
            return new HttpRequestMessage(HttpMethod.Put, $"v2/{repository}/manifests/{reference}") { Content = content };
        }, repository, "pull,push", cancellationToken);
        await EnsureAsync(response, $"put manifest {repository}:{reference}");
        Writes++;
    }

    /// <summary>Deletes a manifest reference (tag or digest); false when the registry does not support deleting it (405, or an unsupported error).</summary>
    public async Task<bool> DeleteManifestAsync(string repository, string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, $"v2/{repository}/manifests/{reference}"), repository, "delete", cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound) return true;
        if (response.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.BadRequest) return false;
        await EnsureAsync(response, $"delete {repository}:{reference}");
        Writes++;
        return true;
    }

    public async Task<long?> BlobSizeAsync(string repository, Digest digest, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}"), repository, "pull", cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        await EnsureAsync(response, $"blob {digest} in {repository}");
        return response.Content.Headers.ContentLength;
    }

    /// <summary>Cross-repository mount on this registry; false when the registry opened an upload instead.</summary>
    public async Task<bool> MountAsync(string repository, Digest digest, string from, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, $"v2/{repository}/blobs/uploads/?mount={digest}&from={from}"),
            repository, "pull,push", cancellationToken, extraScope: $"repository:{from}:pull");
        if (response.StatusCode == HttpStatusCode.Created)
        {
            Writes++;
            return true;
        }
        if (response.StatusCode == HttpStatusCode.Accepted && response.Headers.Location is { } location)
        {
            // An upload session we will not use: cancel it rather than leave it to expire.
            using var cancel = await SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, location), repository, "pull,push", cancellationToken);
        }
        return false;
    }

    /// <summary>
    /// Bytes per upload request: a blob larger than this goes up as PATCH chunks of this size, so a copy that breaks
    /// off re-sends at most one chunk even to a registry that drops a chunk it did not get whole.
    /// </summary>
    public long UploadChunkSize { get; init; } = 16 << 20;

    /// <summary>
    /// Copies one blob from <paramref name="source"/>, streamed (never buffered): one upload session here, the body
    /// read from the source once and sent in chunks (the last one with the closing PUT). When the connection to
    /// either side drops, the copy resumes where the destination says it stands: the session's offset (GET on the
    /// upload), the source read again from there with a Range request. Only a session the destination lost (or an
    /// offset it cannot state) starts again from zero. <paramref name="sent"/> hears of every byte sent.
    /// </summary>
    public async Task CopyBlobAsync(OciRegistryClient source, string sourceRepository, string repository, Digest digest, long size,
        CancellationToken cancellationToken, Action<long>? sent = null)
    {
        string? session = null; // the upload's latest Location: registries carry their state in it
        long offset = 0;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (session is not null && await UploadOffsetAsync(session, repository, cancellationToken) is { } stands) offset = stands;
                else
                {
                    using var start = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, $"v2/{repository}/blobs/uploads/"), repository, "pull,push", cancellationToken);
                    await EnsureAsync(start, $"upload to {repository}");
                    session = (start.Headers.Location ?? throw new RegistryCallException($"upload to {repository} gave no Location")).ToString();
                    offset = 0;
                }
                if (offset > size) throw new RegistryCallException($"upload of {digest} to {repository} holds {offset} bytes, more than the blob's {size}", HttpStatusCode.RequestedRangeNotSatisfiable);

                using var get = offset == size ? null : await source.SendAsync(() =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{sourceRepository}/blobs/{digest}");
                    if (offset > 0) request.Headers.Range = new RangeHeaderValue(offset, null);
                    return request;
                }, sourceRepository, "pull", cancellationToken, streamed: true);
                if (get is not null) await EnsureAsync(get, $"blob {digest} of {sourceRepository}");
                await using var body = get is null ? Stream.Null : await get.Content.ReadAsStreamAsync(cancellationToken);
                // A source that ignores Range sends it all: skip what the destination already has.
                if (get is not null && offset > 0 && get.StatusCode != HttpStatusCode.PartialContent) await SkipAsync(body, offset, cancellationToken);

                while (true)
                {
                    var length = Math.Min(size - offset, Math.Max(1, UploadChunkSize));
                    var last = offset + length == size;
                    var target = last ? session + (session.Contains('?') ? "&" : "?") + $"digest={digest}" : session;
                    // Not retried by SendAsync (the body is a stream): a failure resumes in the loop above. A source that
                    // breaks off cancels the chunk's request, so its connection is torn down at once and the destination
                    // lets go of the session rather than wait for the rest of the chunk.
                    using var chunk = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    using var request = new HttpRequestMessage(last ? HttpMethod.Put : HttpMethod.Patch, target)
                    {
                        Content = new StreamContent(new SliceStream(body, length, sent, chunk.Cancel), 256 << 10),
                    };
                    request.Content.Headers.ContentLength = length;
                    request.Content.Headers.ContentType = new MediaTypeHeaderValue(MediaTypes.OctetStream);
                    if (!last) request.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{offset + length - 1}");
                    using var response = await SendOnceAsync(request, repository, "pull,push", chunk.Token);
                    await EnsureAsync(response, $"upload of {digest} to {repository}");
                    if (last)
                    {
                        Writes++;
                        return;
                    }
                    session = response.Headers.Location?.ToString() ?? session;
                    offset += length;
                }
            }
            catch (Exception e) when (attempt < maxAttempts && !cancellationToken.IsCancellationRequested
                                      && e is HttpRequestException or IOException or OperationCanceledException or RegistryCallException { Status: null or >= HttpStatusCode.InternalServerError
                                          or HttpStatusCode.TooManyRequests or HttpStatusCode.RequestedRangeNotSatisfiable or HttpStatusCode.NotFound })
            {
                // A session the destination lost, or whose offset it cannot state (a "0-0" range is 0 or 1 bytes),
                // is started afresh; otherwise the next attempt asks it where it stands.
                if (e is RegistryCallException { Status: HttpStatusCode.NotFound } || (e is RegistryCallException { Status: HttpStatusCode.RequestedRangeNotSatisfiable } && (offset == 0 || offset > size)))
                    session = null;
                await Task.Delay(Backoff(attempt, null), cancellationToken);
            }
        }
    }

    /// <summary>How many bytes an upload session holds (its Range "0-&lt;last&gt;"), or null when it cannot say.</summary>
    private async Task<long?> UploadOffsetAsync(string session, string repository, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, session), repository, "pull,push", cancellationToken);
        if (!response.IsSuccessStatusCode) return null;
        var range = response.Headers.TryGetValues("Range", out var values) ? values.FirstOrDefault() : null;
        var dash = range?.IndexOf('-') ?? -1;
        if (range is null || dash < 0 || !long.TryParse(range[(dash + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var end)) return null;
        return end == 0 ? 0 : end + 1;
    }

    private static async Task SkipAsync(Stream body, long count, CancellationToken cancellationToken)
    {
        var buffer = new byte[81920];
        while (count > 0)
        {
            var read = await body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), cancellationToken);
            if (read == 0) throw new IOException("the source ended before the resumed offset");
            count -= read;
        }
    }

    /// <summary>The next <c>length</c> bytes of a stream, as a stream of their own; a source that ends early is a dropped connection.</summary>
    private sealed class SliceStream(Stream inner, long length, Action<long>? read, Action broken) : ReadOnlyStream
    {
        private readonly long total = length;
        private long remaining = length;

        public override long Length => total;
        public override long Position { get => total - remaining; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (remaining == 0) return 0;
            int n;
            try
            {
                n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, remaining)], cancellationToken);
                if (n == 0) throw new IOException($"the source ended {remaining} bytes early");
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                broken();
                throw;
            }
            remaining -= n;
            read?.Invoke(n);
            return n;
        }
    }

    /// <summary>
    /// The OCI 1.1 referrers of a manifest, as the descriptors the registry lists them with. Where the registry has no
    /// referrers API (it answers 404, as distribution 2.8 does), from the referrers tag schema instead: the index
    /// tagged <see cref="ReferrersTag"/>.
    /// </summary>
    public async Task<IReadOnlyList<Referrer>> ReferrersAsync(string repository, Digest subject, CancellationToken cancellationToken)
    {
        byte[] content;
        using (var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/referrers/{subject}"), repository, "pull", cancellationToken))
        {
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                referrersApi = false;
                return await GetManifestAsync(repository, ReferrersTag(subject), cancellationToken) is { } index && MediaTypes.IsIndex(index.MediaType)
                    ? Referrers(index.Content) : [];
            }
            if (!response.IsSuccessStatusCode) return [];
            referrersApi = true;
            content = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        }
        return Referrers(content);
    }

    /// <summary>
    /// Whether the registry has the referrers API (asked once): without it, a client that pushes a referrer keeps the
    /// referrers tag schema's index up to date itself.
    /// </summary>
    public async Task<bool> HasReferrersApiAsync(string repository, Digest subject, CancellationToken cancellationToken)
    {
        if (referrersApi is { } known) return known;
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/referrers/{subject}"), repository, "pull", cancellationToken);
        if (response.StatusCode != HttpStatusCode.NotFound) await EnsureAsync(response, $"referrers of {subject} in {repository}");
        return (referrersApi = response.StatusCode != HttpStatusCode.NotFound).Value;
    }

    /// <summary>
    /// Adds referrers to the tag-schema index of <paramref name="subject"/> (created when absent), each digest once;
    /// true when it had to be written.
    /// </summary>
    public async Task<bool> AddToReferrersTagAsync(string repository, Digest subject, IEnumerable<Referrer> referrers, CancellationToken cancellationToken)
    {
        var tag = ReferrersTag(subject);
        var manifests = new JsonArray();
        if (await GetManifestAsync(repository, tag, cancellationToken) is { } existing && MediaTypes.IsIndex(existing.MediaType)
            && JsonNode.Parse(existing.Content)?["manifests"] is JsonArray listed)
            foreach (var entry in listed) manifests.Add(entry?.DeepClone());
        var known = manifests.Select(m => m?["digest"]?.GetValue<string>()).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var added = referrers.Where(r => known.Add(r.Digest.ToString())).ToList();
        if (added.Count == 0) return false;
        foreach (var referrer in added) manifests.Add(referrer.Descriptor.DeepClone());
        var index = new JsonObject { ["schemaVersion"] = 2, ["mediaType"] = MediaTypes.OciIndex, ["manifests"] = manifests };
        var bytes = Encoding.UTF8.GetBytes(index.ToJsonString());
        await PutManifestAsync(repository, tag, new RemoteManifest(bytes, MediaTypes.OciIndex, Digest.Compute(Digest.Sha256, bytes)), cancellationToken);
        return true;
    }

    /// <summary>The referrers tag schema's tag for a subject: <c>&lt;alg&gt;-&lt;hex&gt;</c>, the hex cut to 64 characters.</summary>
    public static string ReferrersTag(Digest subject)
    {
        var text = subject.ToString();
        var colon = text.IndexOf(':');
        var hex = text[(colon + 1)..];
        return $"{text[..Math.Min(colon, 32)]}-{hex[..Math.Min(hex.Length, 64)]}";
    }

    /// <summary>Whether a tag is a referrers tag-schema index (managed with its subject, never synced as a tag of its own).</summary>
    public static bool IsReferrersTag(string tag) => ReferrersTagPattern.IsMatch(tag);

    private static readonly System.Text.RegularExpressions.Regex ReferrersTagPattern =
        new("^(sha256|sha512)-[0-9a-f]{64}$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    private static IReadOnlyList<Referrer> Referrers(byte[] index)
    {
        try
        {
            if (JsonNode.Parse(index)?["manifests"] is not JsonArray manifests) return [];
            return manifests.OfType<JsonObject>()
                .Select(m => m["digest"] is JsonValue value && value.TryGetValue<string>(out var text) && Digest.TryParse(text, out var digest)
                    ? new Referrer(digest, m) : null)
                .OfType<Referrer>().ToList();
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private static HttpRequestMessage ManifestRequest(HttpMethod method, string repository, string reference)
    {
        var request = new HttpRequestMessage(method, $"v2/{repository}/manifests/{reference}");
        foreach (var type in ManifestTypes) request.Headers.Accept.ParseAdd(type);
        return request;
    }

    private static string? NextLink(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Link", out var links)) return null;
        var link = links.FirstOrDefault(l => l.Contains("rel=\"next\"", StringComparison.Ordinal));
        if (link is null) return null;
        var start = link.IndexOf('<');
        var end = link.IndexOf('>');
        return start < 0 || end <= start ? null : link[(start + 1)..end].TrimStart('/');
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string what)
    {
        if (response.IsSuccessStatusCode) return;
        var body = response.Content is null ? "" : await response.Content.ReadAsStringAsync();
        if (body.Length > 500) body = body[..500];
        // A refused chunk says where the upload stands; worth having in the message.
        var stands = response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && response.Headers.TryGetValues("Range", out var range)
            ? $" (the upload holds {range.First()}{(response.RequestMessage?.Content?.Headers.TryGetValues("Content-Range", out var sent) == true ? $", the chunk was {sent.First()}" : "")})"
            : "";
        throw new RegistryCallException($"{what}: {(int)response.StatusCode} {response.ReasonPhrase} {body}".TrimEnd() + stands, response.StatusCode);
    }

    /// <summary>Sends with authentication and retries (429, 5xx, dropped connections), rebuilding the request for each attempt.</summary>
    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> build, string? repository, string? actions,
        CancellationToken cancellationToken, bool streamed = false, string? extraScope = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            HttpResponseMessage? response = null;
            try
            {
                using var request = build();
                response = await SendOnceAsync(request, repository, actions, cancellationToken, streamed, extraScope);
                if (attempt < maxAttempts && (response.StatusCode == HttpStatusCode.TooManyRequests || (int)response.StatusCode >= 500))
                {
                    var delay = Backoff(attempt, response.Headers.RetryAfter);
                    response.Dispose();
                    await Task.Delay(delay, cancellationToken);
                    continue;
                }
                return response;
            }
            catch (Exception e) when (attempt < maxAttempts && e is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
            {
                response?.Dispose();
                await Task.Delay(Backoff(attempt, null), cancellationToken);
            }
        }
    }

    /// <summary>One request; on a 401 with a challenge, authenticates (token or Basic) and sends it once more.</summary>
    private async Task<HttpResponseMessage> SendOnceAsync(HttpRequestMessage request, string? repository, string? actions,
        CancellationToken cancellationToken, bool streamed = false, string? extraScope = null)
    {
        await PaceAsync(cancellationToken);
        var scope = repository is null ? "registry:catalog:*" : $"repository:{repository}:{actions}";
        if (extraScope is not null) scope += " " + extraScope;
        Authorize(request, scope);
        var completion = streamed ? HttpCompletionOption.ResponseHeadersRead : HttpCompletionOption.ResponseContentRead;
        var response = await http.SendAsync(request, completion, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Unauthorized || request.Content is StreamContent) return response;
        var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
        if (challenge is null) return response;
        if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase) && credentials is not null && !basic) basic = true;
        else if (challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase)) await FetchTokenAsync(challenge.Parameter ?? "", scope, cancellationToken);
        else return response;
        response.Dispose();
        using var retry = await CloneAsync(request);
        Authorize(retry, scope);
        return await http.SendAsync(retry, completion, cancellationToken);
    }

    private void Authorize(HttpRequestMessage request, string scope)
    {
        if (tokens.TryGetValue(scope, out var token)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        else if (basic && credentials is { } c)
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{c.User}:{c.Password}")));
    }

    private async Task FetchTokenAsync(string parameters, string scope, CancellationToken cancellationToken)
    {
        var values = ParseChallenge(parameters);
        if (!values.TryGetValue("realm", out var realm)) throw new RegistryCallException("Bearer challenge without a realm");
        var query = new StringBuilder($"?service={Uri.EscapeDataString(values.GetValueOrDefault("service", ""))}");
        foreach (var part in scope.Split(' ')) query.Append("&scope=").Append(Uri.EscapeDataString(part));
        using var request = new HttpRequestMessage(HttpMethod.Get, realm + query);
        if (credentials is { } c)
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{c.User}:{c.Password}")));
        using var response = await http.SendAsync(request, cancellationToken);
        await EnsureAsync(response, "token request");
        using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken));
        var token = document.RootElement.TryGetProperty("token", out var t) ? t.GetString()
            : document.RootElement.TryGetProperty("access_token", out var a) ? a.GetString() : null;
        tokens[scope] = token ?? throw new RegistryCallException("token response without a token");
    }

    private static Dictionary<string, string> ParseChallenge(string parameters)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (System.Text.RegularExpressions.Match match in System.Text.RegularExpressions.Regex.Matches(parameters, "(\\w+)=\"([^\"]*)\""))
            result[match.Groups[1].Value] = match.Groups[2].Value;
        return result;
    }

    private static async Task<HttpRequestMessage> CloneAsync(HttpRequestMessage request)
    {
        var clone = new HttpRequestMessage(request.Method, request.RequestUri);
        foreach (var header in request.Headers.Where(h => h.Key != "Authorization")) clone.Headers.TryAddWithoutValidation(header.Key, header.Value);
        if (request.Content is not null)
        {
            var bytes = await request.Content.ReadAsByteArrayAsync();
            clone.Content = new ByteArrayContent(bytes);
            foreach (var header in request.Content.Headers) clone.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
        return clone;
    }

    private async Task PaceAsync(CancellationToken cancellationToken)
    {
        if (minInterval == TimeSpan.Zero) return;
        await rate.WaitAsync(cancellationToken);
        try
        {
            var wait = nextRequest - DateTimeOffset.UtcNow;
            if (wait > TimeSpan.Zero) await Task.Delay(wait, cancellationToken);
            nextRequest = DateTimeOffset.UtcNow + minInterval;
        }
        finally
        {
            rate.Release();
        }
    }

    /// <summary>Retry-After when the server gives one (capped at a minute), else exponential back-off with jitter.</summary>
    private static TimeSpan Backoff(int attempt, RetryConditionHeaderValue? retryAfter)
    {
        if (retryAfter?.Delta is { } delta) return delta > TimeSpan.FromMinutes(1) ? TimeSpan.FromMinutes(1) : delta;
        if (retryAfter?.Date is { } date) return TimeSpan.FromSeconds(Math.Clamp((date - DateTimeOffset.UtcNow).TotalSeconds, 0, 60));
        var baseDelay = TimeSpan.FromMilliseconds(200 * Math.Pow(2, attempt - 1));
        return baseDelay + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 100));
    }

    public void Dispose()
    {
        http.Dispose();
        rate.Dispose();
    }
}
