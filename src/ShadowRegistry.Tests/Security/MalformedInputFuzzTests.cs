using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ShadowRegistry.Auth;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Security;

/// <summary>
/// Hundreds of malformed requests, generated from combinations of bad names, tags, digests, headers, bodies,
/// methods and query strings, sent over raw sockets so they go out exactly as written. For every one: no 5xx, an
/// OCI error body on every error (empty for HEAD), no stack trace, the expected status where the answer is
/// determined, and no change to the stored data (blobs/ and repositories/, compared file by file with SHA-256 before
/// and after each request) nor a new upload session unless the case opened one on purpose.
/// </summary>
public sealed class MalformedInputFuzzTests
{
    private const string Repository = "fuzz/app";

    [Fact]
    public async Task MalformedRequestsNeitherFailNorChangeStoredData()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = server.CreateClient();
        var content = await FuzzContent.PushAsync(client, Repository);

        async Task<string> OpenSessionAsync()
        {
            using var response = await client.PostAsync($"v2/{Repository}/blobs/uploads/", null);
            await response.ExpectAsync(HttpStatusCode.Accepted);
            return response.Headers.Location!.ToString().Split('?')[0].Split('/')[^1];
        }

        var cases = OpenRegistryCases(client, content).ToList();
        var failures = await new FuzzRun(server, OpenSessionAsync).RunAsync(cases);
        Assert.True(cases.Count >= 300, $"only {cases.Count} cases");
        Assert.True(failures.Count == 0, FuzzRun.Table(failures, cases.Count));
    }

    [Fact]
    public async Task MalformedAuthenticationNeitherFailsNorChangesStoredData()
    {
        await using var server = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false));
        using var client = server.CreateClient();
        var writerToken = await AuthTestSupport.TokenAsync(client, AuthTestSupport.Writer,
            "repository:fuzz/app:pull,push,delete", "repository:team-a/app:pull,push", "repository:team-b/app:pull,push");
        FuzzContent teamB;
        using (var writer = AuthTestSupport.WithToken(server, writerToken))
        {
            await FuzzContent.PushAsync(writer, Repository);
            await FuzzContent.PushAsync(writer, "team-a/app");
            teamB = await FuzzContent.PushAsync(writer, "team-b/app");
        }
        var teamToken = await AuthTestSupport.TokenAsync(client, AuthTestSupport.Team,
            ["repository:team-a/app:pull,push,delete", .. Enumerable.Range(1, 5).Select(i => $"repository:team-a/m{i}:pull,push")]);

        var cases = AuthCases(server, teamB, writerToken, teamToken).ToList();
        var failures = await new FuzzRun(server, () => throw new InvalidOperationException("no sessions here")).RunAsync(cases);
        Assert.True(cases.Count >= 100, $"only {cases.Count} cases");
        Assert.True(failures.Count == 0, FuzzRun.Table(failures, cases.Count));
    }

    // ---------------------------------------------------------------------------------------------------------
    // The open registry (no authentication): names, tags, digests, headers, bodies, methods, queries, mounts.

    private static IEnumerable<FuzzCase> OpenRegistryCases(HttpClient client, FuzzContent content)
    {
        var layer = content.LayerDigest;
        var manifestDigest = content.ManifestDigest;
        var validManifest = content.ManifestVariant("name-cases");
        var newBlob = Encoding.UTF8.GetBytes("a blob no case may store");
        var newBlobDigest = OciHttp.Sha256(newBlob);

        Func<Reply, Task<string?>> BlobAbsent(string repository, string digest) => async _ =>
        {
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}"));
            return head.StatusCode == HttpStatusCode.NotFound ? null : $"afterwards HEAD {repository}/blobs/{digest[..16]}… answers {(int)head.StatusCode}, expected 404";
        };

        // 1. Invalid repository names on every kind of endpoint.
        string[] invalidNames =
        [
            "Fuzz/app", "fuzz/APP", "fuzz//app", "fuzz/app/", "/fuzz/app", new string('a', 256), "fuzz/" + new string('b', 251),
            "fuzz/app%0A", "fuzz/app%0D", "fuzz/app%0D%0A", "fuzz%0A/app", "fuzz/a%00pp", "fuzz/%EF%BD%81pp", "fuzz/%D0%B0pp",
            "fuzz/app%20", "fuzz/app%09", "fuzz/-app", "fuzz/app.", "fuzz/.app", "fuzz/a%2Fpp", "fuzz/app%E2%80%8B",
        ];
        // Dot segments: the server resolves them; what is left is still not a valid name, or not the API at all.
        string[] dotNames = ["fuzz/x/../../Fuzz/app", "fuzz/%2E%2E/Fuzz", "fuzz/..%2Fapp", "fuzz/%2e%2e%2fapp"];
        foreach (var name in invalidNames.Concat(dotNames))
        {
            // 404: a path whose name the router cannot take apart is no endpoint (NOT_FOUND); either way nothing is stored.
            const string expect = "400 NAME_INVALID|404";
            var protocol = name.Contains("%00");
            var v2 = $"/v2/{name}";
            FuzzCase Case(string method, string target, byte[]? body = null, params (string, string)[] headers) =>
                new(new RawHttp.Request(method, target) { Body = body, Headers = Headers(headers) }, expect) { ProtocolLevel = protocol };
            yield return Case("GET", $"{v2}/tags/list");
            yield return Case("GET", $"{v2}/manifests/v1");
            yield return Case("HEAD", $"{v2}/manifests/v1");
            yield return Case("PUT", $"{v2}/manifests/v1", validManifest, ("Content-Type", OciHttp.OciManifest));
            yield return Case("DELETE", $"{v2}/manifests/v1");
            yield return Case("GET", $"{v2}/blobs/{layer}");
            yield return Case("HEAD", $"{v2}/blobs/{layer}");
            yield return Case("DELETE", $"{v2}/blobs/{layer}");
            yield return Case("POST", $"{v2}/blobs/uploads/");
            yield return Case("POST", $"{v2}/blobs/uploads/?digest={newBlobDigest}", newBlob);
            yield return Case("POST", $"{v2}/blobs/uploads/?mount={layer}&from={Repository}");
            yield return Case("PATCH", $"{v2}/blobs/uploads/{{session}}", newBlob, ("Content-Type", "application/octet-stream"));
            yield return Case("GET", $"{v2}/referrers/{manifestDigest}");
        }

        // Dot segments that leave the API: nothing outside /v2 may be reached, and the answer is still an OCI error.
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/a/../../../tmp/x/blobs/uploads/?digest={newBlobDigest}") { Body = newBlob }, "400|404");
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/%2E%2E/%2E%2E/tmp/x/blobs/uploads/?digest={newBlobDigest}") { Body = newBlob }, "400|404");
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/../../etc/passwd"), "400|404");

        // 2. Invalid tags. GET/HEAD of an invalid reference: 404 MANIFEST_UNKNOWN; PUT with one: 400 TAG_INVALID.
        string[] invalidTags =
        [
            "evil%0A", "v1%0A", "%0Av1", "v1%0D%0A", new string('t', 129), ".lead", "-lead", "ev%00il", "ev%20il", "%EF%BD%81", "ta%0Dg",
            ".INVALID_MANIFEST_NAME", "v1%09", "v1%2Fx",
        ];
        foreach (var tag in invalidTags)
        {
            var protocol = tag.Contains("%00");
            var target = $"/v2/{Repository}/manifests/{tag}";
            yield return new FuzzCase(new RawHttp.Request("GET", target), "404 MANIFEST_UNKNOWN") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("HEAD", target), "404") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("PUT", target) { Body = content.ManifestVariant("tag " + tag), Headers = Headers(("Content-Type", OciHttp.OciManifest)) },
                "400 TAG_INVALID") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("DELETE", target), "400 TAG_INVALID|404 MANIFEST_UNKNOWN") { ProtocolLevel = protocol };
        }
        // The tag list endpoint with a trailing newline is no endpoint.
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/tags/list%0A"), "404");
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/tags/list%0D%0A"), "404");
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/_catalog%0A"), "404");

        // 3. Invalid digests, wherever a digest goes.
        var freshManifest = content.ManifestVariant("digest-cases");
        var freshManifestHex = OciHttp.Sha256(freshManifest)["sha256:".Length..];
        var unique = 0;
        foreach (var bad in DigestVariants(layer["sha256:".Length..]))
        {
            var protocol = bad.Contains("%00");
            var blobs = $"/v2/{Repository}/blobs/{bad}";
            var target = $"fuzz/mnt-{++unique}";
            yield return new FuzzCase(new RawHttp.Request("GET", blobs), "400 DIGEST_INVALID|404") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("HEAD", blobs), "400|404") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{target}/blobs/uploads/?mount={bad}&from={Repository}"), "400 DIGEST_INVALID|202")
                { ProtocolLevel = protocol, MayOpenSession = true, After = BlobAbsent(target, layer) };
        }
        foreach (var bad in DigestVariants(manifestDigest["sha256:".Length..]))
        {
            var protocol = bad.Contains("%00");
            var manifests = $"/v2/{Repository}/manifests/{bad}";
            yield return new FuzzCase(new RawHttp.Request("GET", manifests), "400 DIGEST_INVALID|404 MANIFEST_UNKNOWN") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("HEAD", manifests), "400|404") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/referrers/{bad}"), "400 DIGEST_INVALID|404") { ProtocolLevel = protocol };
        }
        foreach (var bad in DigestVariants(freshManifestHex))
        {
            yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/manifests/{bad}") { Body = freshManifest, Headers = Headers(("Content-Type", OciHttp.OciManifest)) },
                "400 DIGEST_INVALID|400 TAG_INVALID") { ProtocolLevel = bad.Contains("%00") };
        }
        foreach (var bad in DigestVariants(newBlobDigest["sha256:".Length..]))
        {
            yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={bad}") { Body = newBlob }, "400 DIGEST_INVALID");
            yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/blobs/uploads/{{session}}?digest={bad}") { Body = newBlob }, "400 DIGEST_INVALID");
        }

        // 4. Odd headers. Range on blob reads: ignored (200), honoured (206) or refused (416), never a failure.
        string[] ranges =
        [
            "items=0-5", "bytes=abc", "bytes=0-99999999999999999999999", "bytes=5-2", "bytes=-0", "bytes=0-1,3-4,6-7", "bytes=99999999-",
            "bytes=--1", "bytes=-99999999999999999999", "bytes=0-5, garbage", "bytes 0-5", "bytes=-1-2",
        ];
        foreach (var range in ranges)
        {
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/blobs/{layer}") { Headers = Headers(("Range", range)) }, "200|206|416") { Note = $"Range: {range}" };
            yield return new FuzzCase(new RawHttp.Request("HEAD", $"/v2/{Repository}/blobs/{layer}") { Headers = Headers(("Range", range)) }, "200|206|416") { Note = $"Range: {range}" };
        }
        // Content-Range on chunks: garbage, backwards, too long, not agreeing with the body, not continuing the upload.
        string[] contentRanges = ["garbage", "bytes=abc", "5-0", "-1-9", "0-99999999999999999999", "0-4", "10-19", "bytes 0-9/abc", "0-9,10-19", "0--9", "%0A0-9"];
        foreach (var contentRange in contentRanges)
        {
            yield return new FuzzCase(new RawHttp.Request("PATCH", $"/v2/{Repository}/blobs/uploads/{{session}}")
                { Body = "0123456789"u8.ToArray(), Headers = Headers(("Content-Range", contentRange), ("Content-Type", "application/octet-stream")) }, "400|416")
                { Note = $"Content-Range: {contentRange}" };
        }
        foreach (var contentRange in new[] { "garbage", "5-0", "0-99999999999999999999999", "1-" + newBlob.Length })
        {
            yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/blobs/uploads/{{session}}?digest={newBlobDigest}")
                { Body = newBlob, Headers = Headers(("Content-Range", contentRange)) }, "400|416") { Note = $"Content-Range: {contentRange}" };
        }
        // Accept headers that exclude the manifest: 404 (README), never a failure.
        foreach (var accept in new[] { "text/html", OciHttp.OciIndex, ",,,;;;", "application/vnd.oci.image.manifest.v1+json;q=abc%0A" })
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/manifests/v1") { Headers = Headers(("Accept", accept)) }, "200|404 MANIFEST_UNKNOWN") { Note = $"Accept: {accept}" };

        // 5. Bad manifests. Each is refused before anything is stored.
        foreach (var (label, body, type, expect) in BadManifests(content))
        {
            yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/manifests/bad")
                { Body = body, Headers = type is null ? [] : Headers(("Content-Type", type)) }, expect) { Note = label };
        }

        // 6. Bodies whose Content-Length lies, and broken framing.
        var manifestBytes = content.ManifestVariant("length-cases");
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", (newBlob.Length + 100).ToString())), HalfClose = true }, "drop|400") { Note = "Content-Length beyond the body; the client then goes away" };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", (newBlob.Length - 5).ToString())) }, "400") { Note = "Content-Length short of the body" };
        yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/manifests/length")
            { Body = manifestBytes, Headers = Headers(("Content-Type", OciHttp.OciManifest), ("Content-Length", (manifestBytes.Length + 100).ToString())), HalfClose = true }, "drop|400")
            { Note = "Content-Length beyond the body; the client then goes away" };
        yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/manifests/length")
            { Body = manifestBytes, Headers = Headers(("Content-Type", OciHttp.OciManifest), ("Content-Length", (manifestBytes.Length - 10).ToString())) }, "400")
            { Note = "Content-Length short of the body" };
        yield return new FuzzCase(new RawHttp.Request("PATCH", $"/v2/{Repository}/blobs/uploads/{{session}}")
            { Body = "0123456789"u8.ToArray(), Headers = Headers(("Content-Length", "100")), HalfClose = true }, "drop|400") { Note = "Content-Length beyond the body; the client then goes away" };
        yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/blobs/uploads/{{session}}?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", (newBlob.Length + 50).ToString())), HalfClose = true }, "drop|400") { Note = "Content-Length beyond the body; the client then goes away" };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", "abc")) }, "400") { ProtocolLevel = true };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", "-1")) }, "400") { ProtocolLevel = true };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", newBlob.Length.ToString()), ("Content-Length", (newBlob.Length + 1).ToString())) }, "400") { ProtocolLevel = true };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = "zz\r\nnot a chunk\r\n0\r\n\r\n"u8.ToArray(), Headers = Headers(("Transfer-Encoding", "chunked")) }, "400") { ProtocolLevel = true };
        yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/manifests/chunked")
            { Body = "5\r\n{\"sch\r\nFFFFFFFFFFFFFFFF\r\n"u8.ToArray(), Headers = Headers(("Transfer-Encoding", "chunked"), ("Content-Type", OciHttp.OciManifest)) }, "400")
            { ProtocolLevel = true };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}")
            { Body = newBlob, Headers = Headers(("Content-Length", newBlob.Length.ToString()), ("Transfer-Encoding", "chunked")) }, "400")
            { ProtocolLevel = true };

        // 7. Methods an endpoint does not have, and methods nobody has.
        (string Method, string Target)[] methods =
        [
            ("FOO", "/v2/"), ("PROPFIND", $"/v2/{Repository}/manifests/v1"), ("OPTIONS", $"/v2/{Repository}/manifests/v1"), ("TRACE", $"/v2/{Repository}/tags/list"),
            ("PATCH", $"/v2/{Repository}/manifests/v1"), ("POST", $"/v2/{Repository}/manifests/v1"), ("PUT", $"/v2/{Repository}/blobs/{layer}"),
            ("POST", $"/v2/{Repository}/blobs/{layer}"), ("PUT", $"/v2/{Repository}/tags/list"), ("DELETE", "/v2/_catalog"), ("POST", "/v2/"),
            ("POST", $"/v2/{Repository}/referrers/{manifestDigest}"), ("DELETE", $"/v2/{Repository}/tags/list"), ("GET", $"/v2/{Repository}/blobs/uploads/"),
            ("PUT", $"/v2/{Repository}/blobs/uploads/"), ("get", "/v2/"), ("MKCOL", $"/v2/{Repository}/blobs/uploads/"), ("DELETE", $"/v2/{Repository}/referrers/{manifestDigest}"),
        ];
        foreach (var (method, target) in methods)
            yield return new FuzzCase(new RawHttp.Request(method, target), "405 UNSUPPORTED|404|400");

        // 8. Query strings: pagination that is not a number, and odd `last` and `ns` values.
        foreach (var path in new[] { $"/v2/{Repository}/tags/list", "/v2/_catalog" })
        {
            foreach (var n in new[] { "-1", "abc", "99999999999999999999", "1.5", "%00", "0x10", "%2B1%2B", "1%2C2" })
                yield return new FuzzCase(new RawHttp.Request("GET", $"{path}?n={n}"), "400 PAGINATION_NUMBER_INVALID");
            yield return new FuzzCase(new RawHttp.Request("GET", $"{path}?n=1&n=2"), "400 PAGINATION_NUMBER_INVALID|200");
            foreach (var query in new[] { "n=", "n=1%0A", "n=%201", "last=%0A", "last=%00%0D%0A", "last=%FF%FE", "n=1&last=%0A", "last=" + new string('z', 5000) })
                yield return new FuzzCase(new RawHttp.Request("GET", $"{path}?{query}"), "200|400");
        }
        foreach (var ns in new[] { "%0A", "..", "..%2F..", "UPPER", "a%00b", "/" })
        {
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/app/manifests/v1?ns={ns}"), "400|404") { ProtocolLevel = ns.Contains("%00") };
            yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/app/blobs/uploads/?digest={newBlobDigest}&ns={ns}") { Body = newBlob }, "400 NAME_INVALID|404")
                { ProtocolLevel = ns.Contains("%00") };
        }

        // 9. Mounts with bad digests or sources: no mount, so an error or a fresh session; never the blob in the target.
        string[] mounts =
        [
            $"mount=sha256:abc&from={Repository}", $"mount=&from={Repository}", $"mount={layer}&from=Fuzz/App", $"mount={layer}&from={Repository}%0A",
            $"mount={layer}&from=..%2F..%2Ffuzz%2Fapp", $"mount={layer}&from=fuzz/../fuzz/app", $"mount={layer}", $"mount={layer}&from=",
            $"mount={layer}%0A&from={Repository}", $"mount={layer}&from={Repository}&from=other/repo", $"mount={layer}&mount={layer}&from={Repository}",
            $"mount={layer}&from={Repository}%00", $"mount={layer.ToUpperInvariant()}&from={Repository}",
        ];
        foreach (var query in mounts)
        {
            var target = $"fuzz/mnt-{++unique}";
            yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{target}/blobs/uploads/?{query}"), "400|202")
                { MayOpenSession = true, After = BlobAbsent(target, layer), ProtocolLevel = query.Contains("%00") };
        }

        // 10. Upload session ids that are not sessions of this repository.
        yield return new FuzzCase(new RawHttp.Request("PATCH", $"/v2/{Repository}/blobs/uploads/not-a-session") { Body = newBlob }, "404 BLOB_UPLOAD_UNKNOWN|400");
        yield return new FuzzCase(new RawHttp.Request("PATCH", $"/v2/{Repository}/blobs/uploads/{{session}}%0A") { Body = newBlob }, "404 BLOB_UPLOAD_UNKNOWN|400");
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/blobs/uploads/00000000000000000000000000000000"), "404 BLOB_UPLOAD_UNKNOWN");
        yield return new FuzzCase(new RawHttp.Request("DELETE", $"/v2/{Repository}/blobs/uploads/{{session}}%00"), "404 BLOB_UPLOAD_UNKNOWN|400") { ProtocolLevel = true };
        yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/{Repository}/blobs/uploads/%2E%2E%2F%2E%2E?digest={newBlobDigest}") { Body = newBlob }, "404|400");
        yield return new FuzzCase(new RawHttp.Request("PUT", $"/v2/other/repo/blobs/uploads/{{session}}?digest={newBlobDigest}") { Body = newBlob }, "404 BLOB_UPLOAD_UNKNOWN");

        // 11. Deletes by invalid digests, each in a repository of its own that holds the content (set up beforehand).
        foreach (var bad in DigestVariants(layer["sha256:".Length..]))
        {
            var repository = $"fuzz/del-{++unique}";
            yield return new FuzzCase(new RawHttp.Request("DELETE", $"/v2/{repository}/blobs/{bad}"), "400 DIGEST_INVALID|404")
                { ProtocolLevel = bad.Contains("%00"), Setup = () => content.CopyToAsync(client, repository), After = BlobPresent(client, repository, layer) };
        }
        foreach (var bad in DigestVariants(manifestDigest["sha256:".Length..]))
        {
            var repository = $"fuzz/del-{++unique}";
            yield return new FuzzCase(new RawHttp.Request("DELETE", $"/v2/{repository}/manifests/{bad}"), "400 DIGEST_INVALID|404 MANIFEST_UNKNOWN")
                { ProtocolLevel = bad.Contains("%00"), Setup = () => content.CopyToAsync(client, repository), After = ManifestPresent(client, repository, manifestDigest) };
        }
    }

    private static Func<Reply, Task<string?>> ManifestPresent(HttpClient client, string repository, string digest) => async _ =>
    {
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/manifests/{digest}"));
        using var tag = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/manifests/v1"));
        return head.StatusCode == HttpStatusCode.OK && tag.StatusCode == HttpStatusCode.OK ? null
            : $"afterwards HEAD {repository}/manifests/{digest[..16]}… answers {(int)head.StatusCode} and tag v1 {(int)tag.StatusCode}: the manifest was deleted";
    };

    private static Func<Reply, Task<string?>> BlobPresent(HttpClient client, string repository, string digest) => async _ =>
    {
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}"));
        return head.StatusCode == HttpStatusCode.OK ? null : $"afterwards HEAD {repository}/blobs/{digest[..16]}… answers {(int)head.StatusCode}: the blob was unlinked";
    };

    private static string[] DigestVariants(string hex) =>
    [
        "sha256:abc",
        "sha256:" + hex.ToUpperInvariant(),
        "sha256:" + hex + "0",
        "sha256:" + hex[..63],
        "sha256:" + hex[..63] + "g",
        "md5:" + hex[..32],
        "sha384:" + hex + hex[..32],
        "SHA256:" + hex,
        "sha256::" + hex,
        "sha256:" + hex + "%0A",
        "sha256:" + hex + "%0D%0A",
        "sha256:%0A" + hex,
        "sha256:" + hex + "%00",
    ];

    private static IEnumerable<(string Label, byte[] Body, string? ContentType, string Expect)> BadManifests(FuzzContent content)
    {
        const string invalid = "400 MANIFEST_INVALID";
        const string manifest = OciHttp.OciManifest;
        byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
        var config = $"{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{content.ConfigDigest}\",\"size\":{content.Config.Length}}}";
        var layer = $"{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{content.LayerDigest}\",\"size\":{content.Layer.Length}}}";
        string Image(string configJson, string layersJson, string extra = "") =>
            $"{{\"schemaVersion\":2,\"mediaType\":\"{manifest}\",\"config\":{configJson},\"layers\":{layersJson}{extra}}}";
        var missing = "sha256:" + new string('0', 64);

        yield return ("not JSON", Utf8("this is not json"), manifest, invalid);
        yield return ("empty body", [], manifest, invalid);
        yield return ("truncated", Utf8("{\"schemaVersion\":2,"), manifest, invalid);
        yield return ("array", Utf8("[]"), manifest, invalid);
        yield return ("null", Utf8("null"), manifest, invalid);
        yield return ("10000 nested objects", Utf8(string.Concat(Enumerable.Repeat("{\"a\":", 10000)) + "1" + new string('}', 10000)), manifest, invalid);
        yield return ("10000 nested arrays", Utf8(new string('[', 10000) + new string(']', 10000)), manifest, invalid);
        yield return ("deep nesting inside a valid manifest", Utf8(Image(config, $"[{layer}]", ",\"annotations\":" + string.Concat(Enumerable.Repeat("{\"a\":", 10000)) + "1" + new string('}', 10000))), manifest, invalid);
        yield return ("schemaVersion 1", Utf8(Image(config, $"[{layer}]").Replace("\"schemaVersion\":2", "\"schemaVersion\":1")), manifest, invalid);
        yield return ("schemaVersion as a string", Utf8(Image(config, $"[{layer}]").Replace("\"schemaVersion\":2", "\"schemaVersion\":\"2\"")), manifest, invalid);
        yield return ("schemaVersion 2.5", Utf8(Image(config, $"[{layer}]").Replace("\"schemaVersion\":2", "\"schemaVersion\":2.5")), manifest, invalid);
        yield return ("schemaVersion 1e400", Utf8(Image(config, $"[{layer}]").Replace("\"schemaVersion\":2", "\"schemaVersion\":1e400")), manifest, invalid);
        yield return ("schemaVersion huge", Utf8(Image(config, $"[{layer}]").Replace("\"schemaVersion\":2", "\"schemaVersion\":" + new string('9', 400))), manifest, invalid);
        yield return ("no config", Utf8($"{{\"schemaVersion\":2,\"mediaType\":\"{manifest}\",\"layers\":[{layer}]}}"), manifest, invalid);
        yield return ("config is an array", Utf8(Image("[]", $"[{layer}]")), manifest, invalid);
        yield return ("config digest is a number", Utf8(Image(config.Replace($"\"{content.ConfigDigest}\"", "5"), $"[{layer}]")), manifest, invalid);
        yield return ("layers is a string", Utf8(Image(config, "\"x\"")), manifest, invalid);
        yield return ("layers holds a string", Utf8(Image(config, "[\"x\"]")), manifest, invalid);
        yield return ("size 1e400", Utf8(Image(config, $"[{layer.Replace($"\"size\":{content.Layer.Length}", "\"size\":1e400")}]")), manifest, invalid);
        yield return ("size beyond long", Utf8(Image(config, $"[{layer.Replace($"\"size\":{content.Layer.Length}", "\"size\":99999999999999999999999")}]")), manifest, invalid);
        yield return ("size negative", Utf8(Image(config, $"[{layer.Replace($"\"size\":{content.Layer.Length}", "\"size\":-1")}]")), manifest, invalid);
        yield return ("size as a string", Utf8(Image(config, $"[{layer.Replace($"\"size\":{content.Layer.Length}", $"\"size\":\"{content.Layer.Length}\"")}]")), manifest, invalid);
        yield return ("size not what the blob has", Utf8(Image(config, $"[{layer.Replace($"\"size\":{content.Layer.Length}", $"\"size\":{content.Layer.Length + 1}")}]")), manifest, "400");
        yield return ("layer digest invalid", Utf8(Image(config, $"[{layer.Replace(content.LayerDigest, "sha256:xyz")}]")), manifest, invalid);
        yield return ("layer missing", Utf8(Image(config, $"[{layer.Replace(content.LayerDigest, missing)}]")), manifest, "400 MANIFEST_BLOB_UNKNOWN");
        yield return ("config missing", Utf8(Image(config.Replace(content.ConfigDigest, missing), $"[{layer}]")), manifest, "400 MANIFEST_BLOB_UNKNOWN");
        yield return ("subject with an invalid digest", Utf8(Image(config, $"[{layer}]", $",\"subject\":{{\"mediaType\":\"{manifest}\",\"digest\":\"sha256:nope\",\"size\":1}}")), manifest, invalid);
        yield return ("subject is a string", Utf8(Image(config, $"[{layer}]", ",\"subject\":\"x\"")), manifest, invalid);
        yield return ("annotations not strings", Utf8(Image(config, $"[{layer}]", ",\"annotations\":{\"a\":1}")), manifest, invalid);
        yield return ("Content-Type says index, body is an image", Utf8(Image(config, $"[{layer}]")), OciHttp.OciIndex, invalid);
        yield return ("Content-Type says Docker schema 1", Utf8(Image(config, $"[{layer}]")), "application/vnd.docker.distribution.manifest.v1+prettyjws", invalid);
        yield return ("Content-Type text/html", Utf8(Image(config, $"[{layer}]")), "text/html", invalid);
        yield return ("mediaType unknown", Utf8(Image(config, $"[{layer}]").Replace(manifest, "application/x-evil")), null, invalid);
        yield return ("index referencing a missing manifest",
            Utf8($"{{\"schemaVersion\":2,\"mediaType\":\"{OciHttp.OciIndex}\",\"manifests\":[{{\"mediaType\":\"{manifest}\",\"digest\":\"{missing}\",\"size\":10}}]}}"),
            OciHttp.OciIndex, "400 MANIFEST_BLOB_UNKNOWN");
        yield return ("index with manifests a string", Utf8($"{{\"schemaVersion\":2,\"mediaType\":\"{OciHttp.OciIndex}\",\"manifests\":\"x\"}}"), OciHttp.OciIndex, invalid);
        yield return ("invalid UTF-8", [.. Utf8("{\"schemaVersion\":2,\"mediaType\":\""), 0xff, 0xfe, .. Utf8("\"}")], manifest, invalid);
        yield return ("NUL bytes", Utf8(Image(config, $"[{layer}]") + "\0\0\0"), manifest, invalid);
        yield return ("over MaxManifestBytes", Utf8("{\"a\":\"" + new string('a', 4 * 1024 * 1024) + "\"}"), manifest, "413 MANIFEST_INVALID");
    }

    // ---------------------------------------------------------------------------------------------------------
    // The authenticated registry (restricted mode): malformed Authorization headers, tokens and scopes.

    private static IEnumerable<FuzzCase> AuthCases(RegistryServer server, FuzzContent teamB, string writerToken, string teamToken)
    {
        var newBlob = Encoding.UTF8.GetBytes("a blob no authentication case may store");
        var newBlobDigest = OciHttp.Sha256(newBlob);
        var parts = writerToken.Split('.');
        var allAccess = "[{\"type\":\"repository\",\"name\":\"fuzz/app\",\"actions\":[\"*\"]},{\"type\":\"repository\",\"name\":\"team-a/app\",\"actions\":[\"*\"]}]";
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string Claims(string access, string sub = "gate") =>
            $"{{\"iss\":\"shadow-registry\",\"aud\":\"shadow-registry\",\"sub\":\"{sub}\",\"iat\":{now},\"nbf\":{now},\"exp\":{now + 300},\"access\":{access}}}";

        (string Label, string Value)[] authorizations =
        [
            ("scheme only", "Bearer"),
            ("empty token", "Bearer "),
            ("one word", "Bearer x"),
            ("three empty parts", "Bearer .."),
            ("three words", "Bearer a.b.c"),
            ("17 KB token", "Bearer " + new string('a', 17 * 1024)),
            ("alg none", "Bearer " + Jwt("{\"alg\":\"none\",\"typ\":\"JWT\"}", Claims(allAccess), null)),
            ("alg none, empty signature dot", "Bearer " + Jwt("{\"alg\":\"none\"}", Claims(allAccess), null) + "."),
            ("HS256 with another secret", "Bearer " + Jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", Claims(allAccess), Encoding.UTF8.GetBytes("another-secret-0123456789abcdef0123456789abcdef"))),
            ("expired", "Bearer " + AuthTestSupport.ForgeToken("gate", [new AccessScope("repository", "fuzz/app", ["*"])], DateTimeOffset.UtcNow.AddHours(-2))),
            ("not yet valid", "Bearer " + AuthTestSupport.ForgeToken("gate", [new AccessScope("repository", "fuzz/app", ["*"])], DateTimeOffset.UtcNow.AddHours(2))),
            ("another audience", "Bearer " + AuthTestSupport.ForgeToken("gate", [new AccessScope("repository", "fuzz/app", ["*"])], DateTimeOffset.UtcNow, service: "other")),
            ("payload swapped, signature kept", $"Bearer {parts[0]}.{B64(Claims(allAccess))}.{parts[2]}"),
            ("signature stripped", $"Bearer {parts[0]}.{parts[1]}."),
            ("signature of the wrong length", $"Bearer {parts[0]}.{parts[1]}.{parts[2]}AA"),
            ("header alg RS256 with the HMAC signature", $"Bearer {B64("{\"alg\":\"RS256\",\"typ\":\"JWT\"}")}.{parts[1]}.{parts[2]}"),
            ("access claim a string (signed)", "Bearer " + Jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", Claims("\"x\""), Encoding.UTF8.GetBytes(AuthTestSupport.Secret))),
            ("access actions a string (signed)", "Bearer " + Jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                Claims("[{\"type\":\"repository\",\"name\":\"fuzz/app\",\"actions\":\"pull\"}]"), Encoding.UTF8.GetBytes(AuthTestSupport.Secret))),
            ("payload not JSON (signed)", "Bearer " + Jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "not json", Encoding.UTF8.GetBytes(AuthTestSupport.Secret))),
            ("Basic credentials of the writer", AuthTestSupport.Basic(AuthTestSupport.Writer.Name, AuthTestSupport.Writer.Password).ToString()),
            ("Basic garbage", "Basic !!!"),
            ("Digest scheme", "Digest username=\"gate\""),
            ("valid token plus junk", $"Bearer {writerToken}x"),
            ("two tokens", $"Bearer {writerToken} {writerToken}"),
            ("two tokens, comma", $"Bearer {writerToken}, Bearer {writerToken}"),
            ("percent-encoded token", "Bearer " + Uri.EscapeDataString(writerToken) + "%00"),
            ("padded base64", $"Bearer {parts[0]}==.{parts[1]}.{parts[2]}"),
        ];
        foreach (var (label, value) in authorizations)
        {
            var headers = Headers(("Authorization", value));
            yield return new FuzzCase(new RawHttp.Request("GET", "/v2/") { Headers = headers }, "401 UNAUTHORIZED") { Note = label };
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/manifests/v1") { Headers = headers }, "401 UNAUTHORIZED") { Note = label };
            yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{Repository}/blobs/uploads/?digest={newBlobDigest}") { Headers = headers, Body = newBlob },
                "401 UNAUTHORIZED") { Note = label };
            yield return new FuzzCase(new RawHttp.Request("DELETE", $"/v2/{Repository}/manifests/v1") { Headers = headers }, "401 UNAUTHORIZED") { Note = label };
        }
        // Raw control characters and an oversized header: the HTTP server may refuse them itself.
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/manifests/v1") { Headers = Headers(("Authorization", "Bearer a\u0001b")) }, "400|401")
            { ProtocolLevel = true, Note = "control character in the token" };
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/manifests/v1") { Headers = Headers(("Authorization", "Bearer " + new string('a', 40 * 1024))) }, "400|401|431")
            { ProtocolLevel = true, Note = "40 KB header" };
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/manifests/v1") { Headers = Headers(("Authorization", $"Bearer {writerToken}\u00ff")) }, "400|401")
            { ProtocolLevel = true, Note = "non-ASCII byte after the token" };
        // The scheme is case-insensitive: a valid token still works (not malformed; the pull changes nothing).
        yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{Repository}/manifests/v1") { Headers = Headers(("Authorization", $"bEaReR {writerToken}")) }, "200");

        // The token endpoint with malformed parameters and credentials.
        var team = AuthTestSupport.Basic(AuthTestSupport.Team.Name, AuthTestSupport.Team.Password).ToString();
        FuzzCase Token(string query, string? authorization, string expect, string note, Func<Reply, Task<string?>>? after = null) =>
            new(new RawHttp.Request("GET", $"/auth/token?{query}") { Headers = authorization is null ? [] : Headers(("Authorization", authorization)) }, expect)
                { Note = note, After = after };
        yield return Token("service=other&scope=repository:fuzz/app:pull", team, "400 UNSUPPORTED", "another service");
        yield return Token("service=%0A&scope=repository:fuzz/app:pull", team, "400 UNSUPPORTED", "newline service");
        yield return Token("service=shadow-registry&scope=repository:fuzz/app:pull", null, "401 UNAUTHORIZED", "no credentials in restricted mode");
        yield return Token("service=shadow-registry", "Basic !!!not-base64", "401 UNAUTHORIZED", "Basic not base64");
        yield return Token("service=shadow-registry", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("team")), "401 UNAUTHORIZED", "Basic without a colon");
        yield return Token("service=shadow-registry", AuthTestSupport.Basic("team", "wrong").ToString(), "401 UNAUTHORIZED", "wrong password");
        yield return Token("service=shadow-registry", AuthTestSupport.Basic("te\0am", "team-password").ToString(), "401 UNAUTHORIZED", "NUL in the user name");
        yield return Token("service=shadow-registry", AuthTestSupport.Basic(new string('u', 10000), "x").ToString(), "401 UNAUTHORIZED", "10000-character user name");
        yield return Token("service=shadow-registry", $"Bearer {writerToken}", "401 UNAUTHORIZED", "a token instead of credentials");
        yield return Token("service=shadow-registry&account=%0A", null, "401 UNAUTHORIZED", "newline account");

        // Scopes the restricted writer is not allowed, spelled in odd ways: the token must grant none of them.
        Func<Reply, Task<string?>> TeamTokenRefused(string method, string target, params string[] allowed) => async reply =>
        {
            if (reply.Status != 200) return null;
            var token = JsonDocument.Parse(reply.Body).RootElement.GetProperty("token").GetString()!;
            var check = await RawHttp.SendAsync(server.BaseAddress, new RawHttp.Request(method, target)
                { Headers = Headers(("Authorization", $"Bearer {token}")), Body = method == "POST" ? newBlob : null });
            return allowed.Contains(check.Status.ToString()) ? null
                : $"the token it issued lets {method} {SecurityChecks.Printable(target)} through: {check.Summary} {check.Excerpt(120)}";
        };
        var teamBManifest = "/v2/team-b/app/manifests/v1";
        (string Scope, string Method, string Target, string[] Allowed)[] scopeEscapes =
        [
            ("repository:team-b/app:pull", "GET", teamBManifest, ["403"]),
            ("repository:team-a/../team-b/app:pull", "GET", teamBManifest, ["403"]),
            ("repository:team-a/../team-b/app:pull", "GET", "/v2/team-a/../team-b/app/manifests/v1", ["403"]),
            ("repository:team-a/app/../../team-b/app:pull", "GET", "/v2/team-a/app/../../team-b/app/manifests/v1", ["403"]),
            ("repository:*:*", "GET", teamBManifest, ["403"]),
            ("repository:team-*/app:*", "GET", teamBManifest, ["403"]),
            ("repository:team-a/**:*", "GET", teamBManifest, ["403"]),
            ("repository:TEAM-A/app:pull", "GET", "/v2/TEAM-A/app/manifests/v1", ["400", "403", "404"]),
            ("repository:team-a/app%0A:pull,push", "POST", $"/v2/team-a/app%0A/blobs/uploads/?digest={newBlobDigest}", ["400", "403", "404"]),
            ("repository:team-a/app%0D:pull,push", "POST", $"/v2/team-a/app%0D/blobs/uploads/?digest={newBlobDigest}", ["400", "403", "404"]),
            ("repository:team-a/app%00:pull,push", "POST", $"/v2/team-a/app%00/blobs/uploads/?digest={newBlobDigest}", ["400", "403", "404"]),
            ("repository(plugin):team-b/app:pull", "GET", teamBManifest, ["403"]),
            ("repository:team-b/app:pull+repository:team-a/app:pull", "GET", teamBManifest, ["403"]),
            ("repository:team-b/app:pull%20repository:team-a/app:pull", "GET", teamBManifest, ["403"]),
            ("registry:catalog:*", "GET", "/v2/_catalog", ["403"]),
            ("registry:catalog:pull", "GET", "/v2/_catalog", ["403"]),
            ("repository:team-a/app:*", "DELETE", teamBManifest, ["403"]),
            ("repository:team-b/app:delete", "DELETE", teamBManifest, ["403"]),
        ];
        foreach (var (scope, method, target, allowed) in scopeEscapes)
            yield return Token($"service=shadow-registry&scope={scope}", team, "200", $"scope {scope}", TeamTokenRefused(method, target, allowed));
        foreach (var scope in new[] { "::", "%00", "repository", "repository:", "repository::pull", "repository:team-a/app:", "repository:team-a/app:%0A", "a:b:c:d:e",
                     string.Join("&scope=", Enumerable.Range(0, 150).Select(i => $"repository:team-a/r{i}:pull")), "repository:" + new string('a', 3000) + ":pull" })
            yield return Token($"service=shadow-registry&scope={scope}", team, "200|400", $"odd scope {scope[..Math.Min(scope.Length, 40)]}");

        // The OAuth2 form.
        FuzzCase Form(string body, string type, string expect, string note, Func<Reply, Task<string?>>? after = null) =>
            new(new RawHttp.Request("POST", "/auth/token") { Body = Encoding.UTF8.GetBytes(body), Headers = Headers(("Content-Type", type)) }, expect) { Note = note, After = after };
        const string form = "application/x-www-form-urlencoded";
        yield return Form("grant_type=refresh_token&refresh_token=x&service=shadow-registry", form, "400 UNSUPPORTED", "refresh token grant");
        yield return Form("grant_type=password&service=shadow-registry", form, "400 UNSUPPORTED", "password grant without a user");
        yield return Form("grant_type=password&username=team&password=wrong&service=shadow-registry", form, "401 UNAUTHORIZED", "wrong password");
        yield return Form("{\"grant_type\":\"password\"}", "application/json", "400 UNSUPPORTED", "JSON body");
        yield return Form("%%%=%%%&&&=&grant_type", form, "4xx", "malformed form");
        yield return Form(string.Join("&", Enumerable.Range(0, 1100).Select(i => $"k{i}=v")), form, "4xx", "1100 form fields");
        yield return Form(new string('k', 3000) + "=v", form, "4xx", "3000-character form key");
        yield return Form("grant_type=password&username=team&password=team-password&service=shadow-registry&scope=repository:team-b/app:pull", form, "200",
            "form scope the user is not allowed", TeamTokenRefused("GET", teamBManifest, "403"));
        yield return Form("grant_type=password&username=team&password=team-password&service=shadow-registry&scope=" + Uri.EscapeDataString("repository:team-a/app%0A:push"),
            "application/x-www-form-urlencoded; charset=%0A", "200|400|415", "odd charset");

        // Requests as the restricted writer that try to reach team-b through the path, ns or mount parameters.
        var team2 = Headers(("Authorization", $"Bearer {teamToken}"));
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/team-a/app/../../team-b/app/manifests/v1") { Headers = team2 }, "403 DENIED");
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/team-a/app/%2E%2E/%2E%2E/team-b/app/manifests/v1") { Headers = team2 }, "403 DENIED");
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/team-a/app%2F..%2F..%2Fteam-b%2Fapp/manifests/v1") { Headers = team2 }, "403 DENIED|400 NAME_INVALID");
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/team-b/app/manifests/v1?ns=team-a") { Headers = team2 }, "403 DENIED");
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/TEAM-B/app/manifests/v1") { Headers = team2 }, "403 DENIED|400 NAME_INVALID");
        yield return new FuzzCase(new RawHttp.Request("GET", "/v2/team-b/app/manifests/v1")
            { Headers = Headers(("Authorization", $"Bearer {teamToken}"), ("X-Original-URL", "/v2/team-a/app/manifests/v1"), ("X-Rewrite-URL", "/v2/team-a/app/manifests/v1")) }, "403 DENIED");
        yield return new FuzzCase(new RawHttp.Request("DELETE", $"/v2/team-b/app/manifests/{teamB.ManifestDigest}") { Headers = team2 }, "403 DENIED");
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/team-a/m1/blobs/uploads/?mount={teamB.LayerDigest}&from=team-a/app%2F..%2F..%2Fteam-b%2Fapp") { Headers = team2 },
            "202|400") { MayOpenSession = true, After = TeamCannotSee(server, teamToken, "team-a/m1", teamB.LayerDigest) };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/team-a/m2/blobs/uploads/?mount={teamB.LayerDigest}&from=team-b/app&ns=team-a") { Headers = team2 },
            "202|400|403") { MayOpenSession = true, After = TeamCannotSee(server, teamToken, "team-a/m2", teamB.LayerDigest) };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/team-a/m3/blobs/uploads/?mount={teamB.LayerDigest}%0A&from=team-b/app") { Headers = team2 },
            "202|400") { MayOpenSession = true, After = TeamCannotSee(server, teamToken, "team-a/m3", teamB.LayerDigest) };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/team-a/m4/blobs/uploads/?mount={teamB.LayerDigest}&from=team-a/app&from=team-b/app") { Headers = team2 },
            "202|400") { MayOpenSession = true, After = TeamCannotSee(server, teamToken, "team-a/m4", teamB.LayerDigest) };
        yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/team-a/m5/blobs/uploads/?mount={teamB.LayerDigest}&from=TEAM-B/app") { Headers = team2 },
            "202|400") { MayOpenSession = true, After = TeamCannotSee(server, teamToken, "team-a/m5", teamB.LayerDigest) };

        // Control characters in repository names: refused, never a failure while building the refusal's challenge.
        foreach (var name in new[] { "team-a/app%0D", "team-a/a%0Dpp", "team-a/app%0A", "team-a/app%0D%0A", "team-a/app%09", "team-a/app%1B", "team-a/app%7F",
                     "team-a/app%00", "team-b/app%0D", "team-b/a%0Dpp", "team-b/app%0A", "team-a/app%C2%85", "team-a/app%E2%80%A8" })
        {
            var protocol = name.Contains("%00");
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{name}/manifests/v1") { Headers = team2 }, "400|403|404") { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("GET", $"/v2/{name}/manifests/v1"), "400|401|404") { ProtocolLevel = protocol, Note = "no token" };
            yield return new FuzzCase(new RawHttp.Request("POST", $"/v2/{name}/blobs/uploads/?digest={newBlobDigest}") { Headers = team2, Body = newBlob }, "400|403|404")
                { ProtocolLevel = protocol };
            yield return new FuzzCase(new RawHttp.Request("DELETE", $"/v2/{name}/manifests/v1") { Headers = team2 }, "400|403|404") { ProtocolLevel = protocol };
        }
    }

    private static Func<Reply, Task<string?>> TeamCannotSee(RegistryServer server, string teamToken, string target, string digest) => async _ =>
    {
        var check = await RawHttp.SendAsync(server.BaseAddress, new RawHttp.Request("GET", $"/v2/{target}/blobs/{digest}")
            { Headers = Headers(("Authorization", $"Bearer {teamToken}")) });
        return check.Status is 404 or 403 ? null : $"afterwards the restricted writer reads team-b's layer in {target}: {check.Summary}";
    };

    private static string B64(string text) => Base64Url(Encoding.UTF8.GetBytes(text));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A compact JWS: HS256-signed with <paramref name="secret"/>, or unsigned when it is null.</summary>
    private static string Jwt(string header, string payload, byte[]? secret)
    {
        var signingInput = $"{B64(header)}.{B64(payload)}";
        if (secret is null) return signingInput;
        return $"{signingInput}.{Base64Url(HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(signingInput)))}";
    }

    private static List<KeyValuePair<string, string>> Headers(params (string Name, string Value)[] headers) =>
        headers.Select(h => KeyValuePair.Create(h.Name, h.Value)).ToList();
}

/// <summary>What a fuzz registry holds: an image (config, layer), its manifest and a referrer.</summary>
internal sealed record FuzzContent(byte[] Config, byte[] Layer, string ManifestDigest)
{
    public string ConfigDigest => OciHttp.Sha256(Config);

    public string LayerDigest => OciHttp.Sha256(Layer);

    /// <summary>A valid manifest of this image that is not stored (its annotation makes it new).</summary>
    public byte[] ManifestVariant(string annotation) => MatrixImage.ManifestFor(Config, Layer, annotation);

    /// <summary>Makes another repository hold the same image (blobs mounted, manifest pushed as v1).</summary>
    public async Task CopyToAsync(HttpClient client, string repository)
    {
        foreach (var digest in new[] { ConfigDigest, LayerDigest })
        {
            using var mount = await client.PostAsync($"v2/{repository}/blobs/uploads/?mount={digest}&from=fuzz/app", null);
            await mount.ExpectAsync(HttpStatusCode.Created);
        }
        using var put = await client.PutManifestAsync(repository, "v1", MatrixImage.ManifestFor(Config, Layer), OciHttp.OciManifest);
        await put.ExpectAsync(HttpStatusCode.Created);
    }

    public static async Task<FuzzContent> PushAsync(HttpClient client, string repository)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"fuzz\":\"{repository}\"}}");
        var layer = OciHttp.RandomBytes(1500, BitConverter.ToInt32(SHA256.HashData(Encoding.UTF8.GetBytes(repository))));
        await client.PushBlobAsync(repository, config);
        await client.PushBlobAsync(repository, layer);
        var manifest = MatrixImage.ManifestFor(config, layer);
        using (var put = await client.PutManifestAsync(repository, "v1", manifest, OciHttp.OciManifest)) await put.ExpectAsync(HttpStatusCode.Created);
        var digest = OciHttp.Sha256(manifest);
        var empty = "{}"u8.ToArray();
        await client.PushBlobAsync(repository, empty);
        var referrer = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"{OciHttp.OciManifest}\",\"artifactType\":\"application/vnd.example.sbom\"," +
            $"\"config\":{{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"{OciHttp.Sha256(empty)}\",\"size\":2}},\"layers\":[]," +
            $"\"subject\":{{\"mediaType\":\"{OciHttp.OciManifest}\",\"digest\":\"{digest}\",\"size\":{manifest.Length}}}}}");
        using (var put = await client.PutManifestAsync(repository, OciHttp.Sha256(referrer), referrer, OciHttp.OciManifest)) await put.ExpectAsync(HttpStatusCode.Created);
        return new FuzzContent(config, layer, digest);
    }
}

/// <summary>One malformed request and what may come of it.</summary>
/// <param name="Expect">
/// Alternatives separated by '|': "NNN" (that status), "NNN CODE" (that status with that OCI error code; HEAD has no
/// body, so only the status), "4xx" (any client error), "drop" (no answer at all is fine: the client broke the request off).
/// </param>
internal sealed record FuzzCase(RawHttp.Request Request, string Expect)
{
    /// <summary>A short description shown with the request.</summary>
    public string? Note { get; init; }

    /// <summary>
    /// The request is not valid HTTP/1.1 (raw control characters, an encoded NUL in the path, broken framing,
    /// conflicting lengths): the HTTP server (Kestrel) may refuse it before the application runs, with its own empty 400
    /// that the registry cannot shape. Such a 400 (empty body) satisfies the case only when the answer lacks the
    /// registry's Docker-Distribution-API-Version header, which proves the application never saw the request.
    /// </summary>
    public bool ProtocolLevel { get; init; }

    /// <summary>A 202 may open an upload session (a mount that cannot happen becomes a plain upload, as the spec says).</summary>
    public bool MayOpenSession { get; init; }

    /// <summary>Preparation before the request (not itself checked, and done before the stored data is snapshotted).</summary>
    public Func<Task>? Setup { get; init; }

    /// <summary>A further check after the request; returns what is wrong, or null.</summary>
    public Func<Reply, Task<string?>>? After { get; init; }

    public string Label => $"{Request.Method} {SecurityChecks.Printable(Request.Target.Length > 140 ? Request.Target[..140] + "…" : Request.Target)}"
                           + (Note is null ? "" : $" [{SecurityChecks.Printable(Note)}]");
}

internal sealed record FuzzFailure(string Label, string Expected, string Got, List<string> Problems);

/// <summary>Sends the cases one by one and collects everything wrong with each answer.</summary>
internal sealed class FuzzRun(RegistryServer server, Func<Task<string>> openSession)
{
    private readonly HashSet<string> sessionsOnPurpose = [];
    // For the failure message: after which case each upload session was first seen (drop cases get no own check).
    private readonly Dictionary<string, string> sessionFirstSeenAfter = [];

    public async Task<List<FuzzFailure>> RunAsync(IReadOnlyList<FuzzCase> cases)
    {
        var failures = new List<FuzzFailure>();
        var expectedData = SecurityChecks.StoredData(server.StorageRoot);
        var initialSessions = SecurityChecks.UploadSessions(server.StorageRoot);

        foreach (var fuzz in cases)
        {
            var request = fuzz.Request;
            if (request.Target.Contains("{session}"))
            {
                var id = await openSession();
                sessionsOnPurpose.Add(id);
                request = request with { Target = request.Target.Replace("{session}", id) };
            }
            var label = fuzz with { Request = request };
            if (fuzz.Setup is not null)
            {
                // What the setup stores is expected at the end too.
                var beforeSetup = SecurityChecks.StoredData(server.StorageRoot);
                await fuzz.Setup();
                var afterSetup = SecurityChecks.StoredData(server.StorageRoot);
                foreach (var path in beforeSetup.Keys.Where(path => !afterSetup.ContainsKey(path))) expectedData.Remove(path);
                foreach (var (path, hash) in afterSetup.Where(entry => beforeSetup.GetValueOrDefault(entry.Key) != entry.Value)) expectedData[path] = hash;
            }
            var dataBefore = SecurityChecks.StoredData(server.StorageRoot);
            var sessionsBefore = SecurityChecks.UploadSessions(server.StorageRoot);
            var problems = new List<string>();
            Reply? reply = null;
            try
            {
                reply = await RawHttp.SendAsync(server.BaseAddress, request);
            }
            catch (Exception e) when (e is IOException or TimeoutException or InvalidDataException or System.Net.Sockets.SocketException)
            {
                // "drop": the client itself broke the request off, so no answer is owed.
                if (!fuzz.Expect.Split('|').Contains("drop")) problems.Add($"no answer: {e.Message}");
            }

            if (reply is not null)
            {
                problems.AddRange(Check(fuzz, reply));
                if (fuzz.After is not null && await fuzz.After(reply) is { } after) problems.Add(after);
                var opened = SecurityChecks.UploadSessions(server.StorageRoot).Except(sessionsBefore).ToList();
                if (fuzz.MayOpenSession && reply.Status == 202 && reply.Header("Location") is { } location)
                {
                    var id = location.Split('?')[0].Split('/')[^1];
                    sessionsOnPurpose.Add(id);
                    opened.Remove(id);
                }
                if (opened.Count > 0) problems.Add($"opened upload session(s) {string.Join(",", opened)} and left them behind");
            }
            foreach (var sid in SecurityChecks.UploadSessions(server.StorageRoot)) sessionFirstSeenAfter.TryAdd(sid, label.Label + " => " + (reply?.Summary ?? "noreply"));
            var changes = SecurityChecks.Differences(dataBefore, SecurityChecks.StoredData(server.StorageRoot));
            if (changes.Count > 0) problems.Add($"stored data changed: {string.Join("; ", changes.Take(6))}");

            if (problems.Count > 0) failures.Add(new FuzzFailure(label.Label, fuzz.Expect, reply?.Summary ?? "-", problems));
        }

        // The whole run, once more: the stored data is what it was (plus what setups stored), and only sessions opened
        // on purpose are new.
        var finalChanges = SecurityChecks.Differences(expectedData, SecurityChecks.StoredData(server.StorageRoot));
        var strangers = SecurityChecks.UploadSessions(server.StorageRoot).Except(initialSessions).Except(sessionsOnPurpose).ToList();
        if (finalChanges.Count > 0 || strangers.Count > 0)
        {
            failures.Add(new FuzzFailure("(whole run)", "stored data unchanged", "-",
                [.. finalChanges.Select(c => $"stored data: {c}"), .. strangers.Select(s => $"upload session {s} opened by no case on purpose, first seen after {sessionFirstSeenAfter.GetValueOrDefault(s)}")]));
        }
        return failures;
    }

    private static IEnumerable<string> Check(FuzzCase fuzz, Reply reply)
    {
        var refusedByHttpServer = fuzz.ProtocolLevel && reply.Status >= 400 && reply.Body.Length == 0 && reply.Header("Docker-Distribution-API-Version") is null;
        if (reply.Status >= 500) yield return $"server error {reply.Summary}: {reply.Excerpt()}";
        // The HTTP server's own refusal can only be a 400, whatever the registry would have answered.
        if (!(refusedByHttpServer && reply.Status == 400) && !Matches(fuzz.Expect, reply)) yield return $"expected {fuzz.Expect}, got {reply.Summary}: {reply.Excerpt(160)}";
        if (reply.Status >= 400)
        {
            if (reply.Method == "HEAD")
            {
                if (reply.Body.Length > 0) yield return "HEAD answer has a body";
            }
            else if (!refusedByHttpServer && SecurityChecks.OciErrorProblem(reply) is { } problem)
            {
                yield return $"error body is not OCI error JSON ({problem}): '{reply.Excerpt(120)}'";
            }
        }
        if (SecurityChecks.LeaksStackTrace(reply)) yield return $"body shows a stack trace or exception: {reply.Excerpt()}";
    }

    private static bool Matches(string expect, Reply reply)
    {
        foreach (var alternative in expect.Split('|'))
        {
            if (alternative == "drop") continue;
            if (alternative == "4xx")
            {
                if (reply.Status is >= 400 and < 500) return true;
                continue;
            }
            var parts = alternative.Split(' ');
            if (int.Parse(parts[0]) != reply.Status) continue;
            if (parts.Length == 1 || reply.Method == "HEAD" || reply.ErrorCode == parts[1]) return true;
        }
        return false;
    }

    public static string Table(List<FuzzFailure> failures, int total)
    {
        var builder = new StringBuilder();
        builder.AppendLine($"{failures.Count} of {total} malformed requests were mishandled:");
        foreach (var failure in failures)
        {
            builder.AppendLine($"  {failure.Label}");
            builder.AppendLine($"      expected {failure.Expected}, got {failure.Got}");
            foreach (var problem in failure.Problems) builder.AppendLine($"      - {problem}");
        }
        return builder.ToString();
    }
}
