using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>Small OCI client helpers for the API tests: push blobs and manifests, read error codes.</summary>
public static class OciHttp
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";

    public static string Sha256(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    public static byte[] RandomBytes(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static async Task<string> PushBlobAsync(this HttpClient client, string repository, byte[] content)
    {
        var digest = Sha256(content);
        using var response = await client.PostAsync($"v2/{repository}/blobs/uploads/?digest={digest}", new ByteArrayContent(content));
        await response.ExpectAsync(HttpStatusCode.Created);
        return digest;
    }

    /// <summary>POST, then one PATCH per chunk with Content-Range, then PUT ?digest=.</summary>
    public static async Task<string> PushBlobChunkedAsync(this HttpClient client, string repository, byte[] content, int chunkSize)
    {
        var digest = Sha256(content);
        using var start = await client.PostAsync($"v2/{repository}/blobs/uploads/", null);
        await start.ExpectAsync(HttpStatusCode.Accepted);
        var location = start.Headers.Location!;
        for (var offset = 0; offset < content.Length; offset += chunkSize)
        {
            var length = Math.Min(chunkSize, content.Length - offset);
            using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content, offset, length) };
            patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{offset + length - 1}");
            using var patched = await client.SendAsync(patch);
            await patched.ExpectAsync(HttpStatusCode.Accepted);
            location = patched.Headers.Location!;
        }
        using var put = await client.PutAsync(WithQuery(location, $"digest={digest}"), null);
        await put.ExpectAsync(HttpStatusCode.Created);
        return digest;
    }

    /// <summary>One PATCH of content[offset..offset+length) with its Content-Range: 202 with the range the session then has.</summary>
    public static async Task PatchChunkAsync(HttpClient client, Uri location, byte[] content, int offset, int length)
    {
        using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent(content, offset, length) };
        patch.Content.Headers.TryAddWithoutValidation("Content-Range", $"{offset}-{offset + length - 1}");
        using var response = await client.SendAsync(patch);
        await response.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Equal($"0-{offset + length - 1}", response.Headers.GetValues("Range").Single());
    }

    public static string WithQuery(Uri location, string query) =>
        location.ToString() + (location.ToString().Contains('?') ? "&" : "?") + query;

    public static async Task<HttpResponseMessage> PutManifestAsync(this HttpClient client, string repository, string reference, byte[] manifest, string mediaType)
    {
        var content = new ByteArrayContent(manifest);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return await client.PutAsync($"v2/{repository}/manifests/{reference}", content);
    }

    /// <summary>Pushes a config and layers, then an image manifest referencing them; returns the manifest bytes and digest.</summary>
    public static async Task<(byte[] Manifest, string Digest)> PushImageAsync(this HttpClient client, string repository, string tag, int seed,
        string mediaType = OciManifest, int layers = 2)
    {
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}");
        var configDigest = await client.PushBlobAsync(repository, config);
        var layerNodes = new JsonArray();
        for (var i = 0; i < layers; i++)
        {
            var layer = RandomBytes(1024 + i, seed * 31 + i);
            var layerDigest = await client.PushBlobAsync(repository, layer);
            layerNodes.Add(Descriptor(mediaType == DockerManifest ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.oci.image.layer.v1.tar+gzip", layerDigest, layer.Length));
        }
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = mediaType,
            ["config"] = Descriptor(mediaType == DockerManifest ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json", configDigest, config.Length),
            ["layers"] = layerNodes,
        };
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        using var response = await client.PutManifestAsync(repository, tag, bytes, mediaType);
        await response.ExpectAsync(HttpStatusCode.Created);
        return (bytes, Sha256(bytes));
    }

    public static JsonObject Descriptor(string mediaType, string digest, long size) =>
        new() { ["mediaType"] = mediaType, ["digest"] = digest, ["size"] = size };

    /// <summary>Asserts the status, showing the body when it is not the expected one.</summary>
    public static async Task ExpectAsync(this HttpResponseMessage response, HttpStatusCode expected)
    {
        if (response.StatusCode != expected)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.Fail($"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        }
    }

    /// <summary>Asserts an OCI error response: status, the errors[0].code, and the JSON shape.</summary>
    public static async Task ExpectErrorAsync(this HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {body}");
        using var document = JsonDocument.Parse(body);
        var errors = document.RootElement.GetProperty("errors");
        Assert.Equal(code, errors[0].GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(errors[0].GetProperty("message").GetString()));
    }
}
