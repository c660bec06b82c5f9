using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace ShadowRegistry.Benchmarks;

/// <summary>
/// The optional operator-page scenario (--ui-pages; ShadowRegistry only, distribution has no such page): a registry
/// holding <see cref="BenchmarkOptions.UiRepositories"/> base repositories and <see cref="BenchmarkOptions.UiChanges"/>
/// live changes (queues of 10, a tenth of them with a pushed image), then each page of /ui/ fetched in turn,
/// sequentially. Reported per page: the time to the whole response on loopback (median, p95, max: an upper bound on
/// the server's time) and the server's CPU time per page.
/// </summary>
public static class UiPagesBenchmark
{
    private const int QueueLength = 10;

    public static async Task<string> RunAsync(BenchmarkOptions options, ServerProcess server, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        var client = new RegistryClient(server.BaseAddress);
        var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\"}");
        var configDigest = Digest(config);
        var populate = Stopwatch.StartNew();
        var next = -1;
        async Task PushAsync(string repository, int index)
        {
            var layer = Encoding.UTF8.GetBytes($"layer of {repository} #{index}");
            var layerDigest = Digest(layer);
            await client.PushSmallBlobAsync(repository, config, configDigest, PushMode.Post, cancellationToken);
            await client.PushSmallBlobAsync(repository, layer, layerDigest, PushMode.Post, cancellationToken);
            var manifest = Encoding.UTF8.GetBytes(
                $"{{\"schemaVersion\":2,\"mediaType\":\"{RegistryClient.ManifestMediaType}\",\"config\":{{\"mediaType\":\"{RegistryClient.ConfigMediaType}\",\"digest\":\"{configDigest}\",\"size\":{config.Length}}}," +
                $"\"layers\":[{{\"mediaType\":\"{RegistryClient.LayerMediaType}\",\"digest\":\"{layerDigest}\",\"size\":{layer.Length}}}]}}");
            await client.PutManifestAsync(repository, "latest", manifest, Digest(manifest), cancellationToken);
        }
        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(async _ =>
        {
            for (int i; (i = Interlocked.Increment(ref next)) < options.UiRepositories;) await PushAsync(Repository(i), i);
        }));
        Benchmark.Progress($"ui pages: {options.UiRepositories} repositories pushed in {populate.Elapsed.TotalSeconds:0} s");
        // Queues of QueueLength changes, each change reading through every one before it in its queue.
        var queues = (options.UiChanges + QueueLength - 1) / QueueLength;
        for (var q = 0; q < queues; q++)
        {
            for (var k = 0; k < QueueLength && q * QueueLength + k < options.UiChanges; k++)
                await client.PutChangeAsync(Change(q, k), [.. Enumerable.Range(0, k).Reverse().Select(a => Change(q, a))], cancellationToken,
                    new Dictionary<string, string> { ["project"] = $"p{q % 10}", ["pipeline"] = "gate" });
            await PushAsync($"changes/{Change(q, 0)}/{Repository(q)}", -q - 1);
        }
        Benchmark.Progress($"ui pages: {options.UiChanges} changes made; all set up after {populate.Elapsed.TotalSeconds:0} s");

        var deep = Change(queues / 2, QueueLength - 1);
        (string Name, string Path)[] pages =
        [
            ("Queue, first page", "ui/"),
            ("Queue, page 5", "ui/?page=5"),
            ("Queue, filtered by label", $"ui/?label=project%3Dp3"),
            ("Change (9 ahead), resolving a name", $"ui/changes/{deep}?name={Repository(queues / 2)}:latest"),
            ("Repositories, first page", "ui/repositories"),
            ("Repositories, a page deep in", $"ui/repositories?after={Uri.EscapeDataString(Repository(options.UiRepositories / 2))}"),
            ("Repositories, search", "ui/repositories?q=r0999"),
            ("Repository tags", $"ui/repository?name={Uri.EscapeDataString(Repository(7))}"),
            ("Manifest detail", $"ui/manifest?name={Uri.EscapeDataString(Repository(7))}&ref=latest"),
            ("Health", "ui/health"),
        ];
        var rows = new StringBuilder();
        rows.AppendLine(CultureInfo.InvariantCulture, $"| Page ({options.UiRepositories} repositories, {options.UiChanges} changes) | Requests | Median ms | p95 ms | Max ms | Server CPU ms/page | Bytes |");
        rows.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (name, path) in pages)
        {
            await GetAsync(http, path, cancellationToken); // untimed: the first request of a page builds what it caches
            var times = new List<double>();
            long bytes = 0;
            var cpuBefore = server.Sample().CpuSeconds;
            for (var i = 0; i < options.UiPageGets; i++)
            {
                var watch = Stopwatch.StartNew();
                bytes = await GetAsync(http, path, cancellationToken);
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
            var cpu = (server.Sample().CpuSeconds - cpuBefore) * 1000 / options.UiPageGets;
            times.Sort();
            rows.AppendLine(CultureInfo.InvariantCulture,
                $"| {name} | {times.Count} | {times[times.Count / 2]:0.0} | {times[(int)Math.Ceiling(times.Count * 0.95) - 1]:0.0} | {times[^1]:0.0} | {cpu:0.0} | {bytes} |");
        }
        return rows.ToString();
    }

    private static string Repository(int i) => $"bench/r{i:00000}";

    private static string Change(int queue, int position) => $"q{queue:000}-{position}";

    private static string Digest(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    private static async Task<long> GetAsync(HttpClient http, string path, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(path, cancellationToken);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK) throw new BenchmarkRequestException($"GET /{path} answered {(int)response.StatusCode}");
        return body.Length;
    }
}
