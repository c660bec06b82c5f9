using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Api;

/// <summary>
/// The catalog over a storage root prepared on disk, as another process (or a crash) would leave it: thousands of
/// repositories, paged completely and in order, and folders without a manifest left out. Filesystem driver only:
/// the on-disk layout is the subject.
/// </summary>
public sealed class CatalogTests(CatalogTests.SeededStorage storage, ITestOutputHelper output) : IClassFixture<CatalogTests.SeededStorage>
{
    private const int Repositories = 3000;

    /// <summary>One seeded storage root for the class (seeding thousands of folders is the slow part); tests leave it as they found it.</summary>
    public sealed class SeededStorage : IDisposable
    {
        private readonly ScratchDirectory scratch = new("catalog");

        public SeededStorage() => Expected = Seed(scratch.Path);

        public string Root => scratch.Path;

        public List<string> Expected { get; }

        public void Dispose() => scratch.Dispose();
    }

    private static string Hex(int seed) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(seed)));

    private static void Write(string path, string content = "{}")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    /// <summary>Lays out repositories the way the registry stores them; returns the names the catalog must list.</summary>
    private static List<string> Seed(string root)
    {
        var repositories = Path.Combine(root, "repositories");
        var listed = new List<string>();
        for (var i = 0; i < Repositories; i++)
        {
            // Flat names, nested ones, and repositories nested in another repository.
            var name = i % 3 == 0 ? $"many/r{i:D4}" : $"many/g{i % 7}/r{i}";
            if (i % 100 == 1) name = $"many/r{i - 1 - (i - 1) % 3:D4}/sub{i}";
            var folder = Path.Combine(repositories, name);
            Write(Path.Combine(folder, "_manifests", "revisions", "sha256", Hex(i)));
            if (i % 2 == 0) Write(Path.Combine(folder, "_manifests", "tags", "latest"), $"sha256:{Hex(i)}");
            if (i % 10 == 0) Write(Path.Combine(folder, "_layers", "sha256", Hex(-i)), $"sha256:{Hex(-i)}");
            listed.Add(name);
        }
        Write(Path.Combine(repositories, "edge", "tagonly", "_manifests", "tags", "v1"), $"sha256:{Hex(1)}");
        listed.Add("edge/tagonly");

        // Interrupted first writes and layer-only pushes: folders and temporaries, no manifest.
        Directory.CreateDirectory(Path.Combine(repositories, "debris", "emptymanifests", "_manifests"));
        Directory.CreateDirectory(Path.Combine(repositories, "debris", "emptyrevisions", "_manifests", "revisions", "sha256"));
        Write(Path.Combine(repositories, "debris", "temponly", "_manifests", "tags", $".{Guid.NewGuid():N}.tmp"));
        Write(Path.Combine(repositories, "debris", "temponly", "_manifests", "revisions", "sha256", $".{Guid.NewGuid():N}.tmp"));
        Write(Path.Combine(repositories, "debris", "lockonly", "_manifests", "tags", ".v1.lock"));
        Write(Path.Combine(repositories, "debris", "layersonly", "_layers", "sha256", Hex(7)));
        return listed.Order(StringComparer.Ordinal).ToList();
    }

    private static async Task<(List<string> Names, string? Next)> PageAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        await response.ExpectAsync(HttpStatusCode.OK);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var names = body.RootElement.GetProperty("repositories").EnumerateArray().Select(e => e.GetString()!).ToList();
        var next = response.Headers.TryGetValues("Link", out var links) ? links.Single() : null;
        return (names, next is null ? null : next[1..next.IndexOf('>')].TrimStart('/'));
    }

    private static async Task<List<string>> AllAsync(HttpClient client) => (await PageAsync(client, "v2/_catalog")).Names;

    [Fact]
    public async Task ThousandsOfRepositoriesPageCompletelyAndFoldersWithoutManifestsAreLeftOut()
    {
        var expected = storage.Expected;
        await using var server = await RegistryServer.StartOnAsync(storage.Root);
        using var client = server.CreateClient();

        var clock = Stopwatch.StartNew();
        Assert.Equal(expected, await AllAsync(client));
        output.WriteLine($"first catalog request (builds the index of {expected.Count}): {clock.Elapsed.TotalMilliseconds:0.0} ms");

        // Follow the Link headers: every name once, in order, in pages of n.
        var paged = new List<string>();
        var pages = 0;
        string? next = "v2/_catalog?n=250";
        clock.Restart();
        while (next is not null)
        {
            var (names, link) = await PageAsync(client, next);
            Assert.InRange(names.Count, 1, 250);
            paged.AddRange(names);
            pages++;
            next = link;
        }
        output.WriteLine($"{pages} pages of 250: {clock.Elapsed.TotalMilliseconds / pages:0.00} ms per request");
        Assert.Equal(expected, paged);
        Assert.Equal((expected.Count + 249) / 250, pages);

        // last need not be a listed name; the page starts after it.
        var middle = expected[1234];
        var (after, _) = await PageAsync(client, $"v2/_catalog?n=3&last={Uri.EscapeDataString(middle + "-")}");
        Assert.Equal(expected.Where(n => string.CompareOrdinal(n, middle + "-") > 0).Take(3), after);
    }

    [Fact]
    public async Task PushesAndDeletesOfThisProcessShowAtOnce()
    {
        var expected = storage.Expected;
        await using var server = await RegistryServer.StartOnAsync(storage.Root);
        using var client = server.CreateClient();
        Assert.Equal(expected, await AllAsync(client));

        var (_, digest) = await client.PushImageAsync("fresh/app", "v1", seed: 50);
        await client.PushBlobAsync("fresh/blobsonly", [1, 2, 3]);
        Assert.Equal(expected.Append("fresh/app").Order(StringComparer.Ordinal), await AllAsync(client));

        // Deleting the tag leaves the manifest; deleting the manifest leaves only layers, which do not count.
        using (var untag = await client.DeleteAsync("v2/fresh/app/manifests/v1")) await untag.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Contains("fresh/app", await AllAsync(client));
        using (var delete = await client.DeleteAsync($"v2/fresh/app/manifests/{digest}")) await delete.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Equal(expected, await AllAsync(client));
    }
}
