using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace ShadowRegistry.Benchmarks;

/// <summary>One server under test with its client and what has been pushed to it so far.</summary>
public sealed class Target(string name, ServerProcess server, RegistryClient client, PushMode pushMode) : IDisposable
{
    public string Name { get; } = name;
    public ServerProcess Server { get; } = server;
    public RegistryClient Client { get; } = client;
    public PushMode PushMode { get; } = pushMode;

    /// <summary>Index of scenario (1) blobs whose push succeeded.</summary>
    public ConcurrentDictionary<int, bool> PushedBlobs { get; } = new();

    /// <summary>(repository index, tag, manifest digest) of manifests whose PUT succeeded.</summary>
    public ConcurrentBag<(int Repository, string Tag, string Digest)> Tags { get; } = [];

    public bool Dead { get; set; }

    public void Dispose() => Client.Dispose();
}

/// <summary>The scenarios, each run against every target in turn (order alternating per scenario) and measured.</summary>
public sealed partial class Benchmark(BenchmarkOptions options, IReadOnlyList<Target> targets, CancellationToken cancellationToken)
{
    private readonly List<Row> rows = [];

    public IReadOnlyList<Row> Rows => rows;

    public static string PushRepository(int i) => $"bench/push-{i:D4}";

    private BlobSpec PushBlob(int i) => new(BlobSpec.SeedFor(1, i), options.BlobMiB * BenchmarkOptions.MiB);

    public async Task RunAsync()
    {
        // Start-up on its own first: ready time, and memory and CPU of the idle server, before the warm-up touches it.
        foreach (var target in targets)
        {
            var idle = target.Server.IdleSample ?? throw new InvalidOperationException($"{target.Name}: no idle sample was taken after start-up");
            rows.Add(new Row
            {
                Scenario = string.Create(CultureInfo.InvariantCulture, $"0a ready after {target.Server.ReadyAfter.TotalMilliseconds:0} ms, idle {ServerProcess.IdleSettle.TotalSeconds:0} s"),
                Server = target.Name,
                IsStartup = true,
                Seconds = target.Server.ReadyAfter.TotalSeconds,
                PeakRssKiB = idle.PeakRssKiB,
                RssKiB = idle.RssKiB,
                CpuSeconds = idle.CpuSeconds,
                PeakSinceStart = true,
            });
        }
        foreach (var target in targets)
        {
            await StartupRowAsync(target);
        }
        if (options.PullThroughOnly)
        {
            await PullThroughAsync();
            return;
        }

        // Digests are computed once, before anything is timed; only the digests are kept.
        Progress("computing digests of the generated blobs");
        Parallel.For(0, options.Blobs, i => _ = PushBlob(i).Digest);
        Parallel.For(0, options.ChunkedUploads, i => _ = new BlobSpec(BlobSpec.SeedFor(2, i), options.ChunkedMiB * BenchmarkOptions.MiB).Digest);
        Parallel.For(0, options.RaceRounds, r => _ = new BlobSpec(BlobSpec.SeedFor(3, r), options.RaceMiB * BenchmarkOptions.MiB).Digest);

        await ForEachTarget(1, $"1 push {options.Blobs}×{options.BlobMiB} MiB @{options.Concurrency}", true, (t, rec) =>
            rec.RunAsync(options.Blobs, options.Concurrency, async (i, ct) =>
            {
                var blob = PushBlob(i);
                await t.Client.PushBlobAsync(PushRepository(i), blob, t.PushMode, ct);
                t.PushedBlobs[i] = true;
                return blob.Length;
            }, cancellationToken));

        await ForEachTarget(2, $"2 chunked {options.ChunkedUploads}×{options.ChunkedMiB} MiB ({options.ChunkMiB} MiB PATCH) @{options.Concurrency}", true, (t, rec) =>
            rec.RunAsync(options.ChunkedUploads, options.Concurrency, async (i, ct) =>
            {
                var blob = new BlobSpec(BlobSpec.SeedFor(2, i), options.ChunkedMiB * BenchmarkOptions.MiB);
                await t.Client.PushBlobChunkedAsync($"bench/chunked-{i:D4}", blob, options.ChunkMiB * BenchmarkOptions.MiB, ct);
                return blob.Length;
            }, cancellationToken));

        await ForEachTarget(3, $"3 same blob {options.RaceMiB} MiB ×{options.RaceClients} clients ×{options.RaceRounds} rounds", true, RaceAsync);

        await ForEachTarget(4, $"4a manifest PUT ×{options.Manifests} @{options.Concurrency}", false, ManifestPushAsync, PrepareManifestsAsync);

        await ForEachTarget(4, $"4b tags/list GET ×{options.TagReads} @{options.Concurrency}", false, (t, rec) =>
        {
            var expected = t.Tags.GroupBy(x => x.Repository).ToDictionary(g => g.Key, g => (IReadOnlyCollection<string>)g.Select(x => x.Tag).ToList());
            var repositories = Math.Min(options.Blobs, options.Manifests);
            return rec.RunAsync(options.TagReads, options.Concurrency, (i, ct) =>
            {
                var repository = i % repositories;
                return t.Client.ListTagsAsync(PushRepository(repository), expected.GetValueOrDefault(repository, []), ct);
            }, cancellationToken);
        });

        await ForEachTarget(5, $"5 blob GET ×{options.Pulls} ({options.BlobMiB} MiB) @{options.PullConcurrency}", true, (t, rec) =>
            rec.RunAsync(options.Pulls, options.PullConcurrency, (i, ct) =>
                t.Client.PullBlobAsync(PushRepository(i % options.Blobs), PushBlob(i % options.Blobs), ct), cancellationToken));

        var manifestGets = $"6 manifest GET by tag ×{options.ManifestGets} @{options.GetConcurrency}";
        await ForEachTarget(6, manifestGets, false, (t, rec) =>
            OverTagsAsync(t, rec, options.ManifestGets, options.GetConcurrency, "GET", (repository, tag, digest, ct) =>
                t.Client.GetManifestAsync(PushRepository(repository), tag, digest, ct)));

        // (6v) The same GETs through a speculative change's view: ShadowRegistry only (distribution has no views),
        // compared with ShadowRegistry's own (6) of this run.
        await ForEachTarget(6, $"6v manifest GET by tag via view ({options.ViewAhead} ahead) ×{options.ViewGets} @{options.GetConcurrency}", false,
            ViewGetAsync, PrepareViewAsync, only: Report.Shadow, baseScenario: manifestGets);

        await ManifestHeadsAsync();
        if (options.Large)
        {
            await LargeStreamsAsync();
            await SkopeoAsync();
            await PullThroughAsync();
        }
    }

    public static string ChangeId(int i) => $"bench-c{i}";

    /// <summary>The change (6v) reads through: the last one, with all others ahead of it.</summary>
    private string ViewedChange => ChangeId(options.ViewAhead);

    private static string ViewRepository(string change, string repository) => $"changes/{change}/{repository}";

    /// <summary>What the untimed set-up of (6v) found wrong; reported in its row as violations (or errors).</summary>
    private readonly List<(bool Violation, string Message)> viewSetupProblems = [];

    /// <summary>
    /// Untimed set-up of (6v): changes c0 … cN, cN with all others ahead (nearest first: cN-1 … c0). Every change
    /// ahead holds an image in a repository of its own, the nearest and the farthest also a tag of their own in a
    /// repository of (6); the viewed change holds an image of its own. Then every tag of (6), those overlay tags and
    /// the own image are read once through the view (also the warm-up of this path) and checked.
    /// </summary>
    private async Task PrepareViewAsync(Target t)
    {
        var n = options.ViewAhead;
        for (var i = 0; i < n; i++) await t.Client.PutChangeAsync(ChangeId(i), [], cancellationToken);
        await t.Client.PutChangeAsync(ViewedChange, Enumerable.Range(0, n).Reverse().Select(ChangeId).ToList(), cancellationToken);

        var expected = new List<(string Repository, string Tag, string Digest)>();
        async Task PushImageAsync(string change, string repository, string tag, BlobSpec layer, int index, bool pushBlobs)
        {
            var path = ViewRepository(change, repository);
            if (pushBlobs)
            {
                await t.Client.PushBlobAsync(path, layer, t.PushMode, cancellationToken);
                await t.Client.PushSmallBlobAsync(path, RegistryClient.ConfigBlob, configDigest, t.PushMode, cancellationToken);
            }
            var manifest = RegistryClient.BuildManifest(configDigest, RegistryClient.ConfigBlob.Length, layer, index);
            var digest = BlobData.DigestOf(manifest);
            await t.Client.PutManifestAsync(path, tag, manifest, digest, cancellationToken);
            expected.Add((repository, tag, digest));
        }

        var setup = new Recorder();
        await setup.RunAsync(n + 1, 4, async (i, ct) =>
        {
            await PushImageAsync(ChangeId(i), $"bench/view-{i:D3}", "v0", new BlobSpec(BlobSpec.SeedFor(6, i), 16 * 1024), 100_000 + i, pushBlobs: true);
            return 0;
        }, cancellationToken);
        // The same repository as (6), another tag, in the nearest and the farthest change ahead: a GET of a tag of (6)
        // in those repositories looks into these overlays, misses, and falls through to the base. The layer and config
        // are the base's (a push through a view may reference what is below it).
        var tags = t.Tags.OrderBy(x => x.Repository).ThenBy(x => x.Tag, StringComparer.Ordinal).ToArray();
        var repositories = tags.Select(x => x.Repository).Distinct().Take(2).ToList();
        foreach (var (change, k) in new[] { n - 1, 0 }.Distinct().Zip(repositories))
        {
            await setup.RunOneAsync(async () =>
            {
                await PushImageAsync(ChangeId(change), PushRepository(k), $"view-{change}", PushBlob(k), 200_000 + change, pushBlobs: false);
                return 0;
            }, cancellationToken);
        }
        foreach (var sample in setup.Samples) viewSetupProblems.Add((false, "set-up: " + sample));

        // Every tag through the view once (and the overlay tags): the digest must be the one pushed there.
        var reads = tags.Select(x => (Repository: PushRepository(x.Repository), x.Tag, x.Digest)).Concat(expected).ToArray();
        var check = new Recorder();
        await check.RunAsync(Math.Max(reads.Length, 200), options.GetConcurrency, (i, ct) =>
        {
            var (repository, tag, digest) = reads[i % reads.Length];
            return t.Client.GetManifestAsync(ViewRepository(ViewedChange, repository), tag, digest, ct);
        }, cancellationToken);
        foreach (var sample in check.Samples) viewSetupProblems.Add((sample.StartsWith("VIOLATION", StringComparison.Ordinal), "set-up check: " + sample));
        Progress($"  [{t.Name}] {n + 1} changes, {expected.Count} images in their overlays; {check.Ops} untimed GETs through {ViewedChange}: " +
            $"{check.Errors} errors, {check.Violations} violations");
    }

    private Task ViewGetAsync(Target t, Recorder rec)
    {
        foreach (var (violation, message) in viewSetupProblems)
        {
            if (violation) rec.Violation(message);
            else rec.Error(message);
        }
        return OverTagsAsync(t, rec, options.ViewGets, options.GetConcurrency, "GET", (repository, tag, digest, ct) =>
            t.Client.GetManifestAsync(ViewRepository(ViewedChange, PushRepository(repository)), tag, digest, ct));
    }

    /// <summary>Runs <paramref name="count"/> operations over the tags pushed in (4a), in a fixed order.</summary>
    private Task OverTagsAsync(Target t, Recorder rec, int count, int concurrency, string what, Func<int, string, string, CancellationToken, Task<long>> operation)
    {
        var tags = t.Tags.OrderBy(x => x.Repository).ThenBy(x => x.Tag, StringComparer.Ordinal).ToArray();
        if (tags.Length == 0)
        {
            rec.Error($"no manifest was pushed in (4a), nothing to {what}");
            return Task.CompletedTask;
        }
        return rec.RunAsync(count, concurrency, (i, ct) =>
        {
            var (repository, tag, digest) = tags[i % tags.Length];
            return operation(repository, tag, digest, ct);
        }, cancellationToken);
    }

    /// <summary>
    /// (3) The same blob pushed by all clients at once, each into its own new repository, released together by a gate;
    /// right after its push each client HEADs the blob in its repository, which must be 200 with the full length.
    /// </summary>
    private async Task RaceAsync(Target t, Recorder rec)
    {
        for (var round = 0; round < options.RaceRounds; round++)
        {
            var blob = new BlobSpec(BlobSpec.SeedFor(3, round), options.RaceMiB * BenchmarkOptions.MiB);
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var r = round;
            var clients = Enumerable.Range(0, options.RaceClients).Select(c => Task.Run(async () =>
            {
                var repository = $"bench/race-{r:D3}-{c:D3}";
                await gate.Task;
                await rec.RunOneAsync(async () =>
                {
                    await t.Client.PushBlobAsync(repository, blob, t.PushMode, cancellationToken);
                    return blob.Length;
                }, cancellationToken);
                try
                {
                    var (status, length) = await t.Client.HeadBlobAsync(repository, blob.Digest, cancellationToken);
                    if (status != HttpStatusCode.OK || length != blob.Length)
                    {
                        rec.Violation($"HEAD {repository} blob after its push: {(int)status}, Content-Length {length?.ToString(CultureInfo.InvariantCulture) ?? "none"} (expected 200, {blob.Length})");
                    }
                }
                catch (BenchmarkRequestException e)
                {
                    rec.Violation($"HEAD {repository} blob after its push failed: {e.Message}");
                }
            }, cancellationToken)).ToList();
            await Task.Delay(50, cancellationToken); // let every client reach the gate
            gate.SetResult();
            await Task.WhenAll(clients);
        }
    }

    private readonly string configDigest = BlobData.DigestOf(RegistryClient.ConfigBlob);

    /// <summary>Untimed: the config blob the manifests of (4a) reference, in each repository of (1) they go to.</summary>
    private async Task PrepareManifestsAsync(Target t)
    {
        var errors = new Recorder();
        await errors.RunAsync(Math.Min(options.Blobs, options.Manifests), options.Concurrency, async (i, ct) =>
        {
            await t.Client.PushSmallBlobAsync(PushRepository(i), RegistryClient.ConfigBlob, configDigest, t.PushMode, ct);
            return 0;
        }, cancellationToken);
        if (errors.Errors > 0) Progress($"  [{t.Name}] {errors.Errors} config blob push(es) failed: {errors.Samples[0]}");
    }

    private Task ManifestPushAsync(Target t, Recorder rec)
    {
        var repositories = Math.Min(options.Blobs, options.Manifests);
        return rec.RunAsync(options.Manifests, options.Concurrency, async (i, ct) =>
        {
            var repository = i % repositories;
            var tag = $"v{i / repositories}";
            var manifest = RegistryClient.BuildManifest(configDigest, RegistryClient.ConfigBlob.Length, PushBlob(repository), i);
            var digest = BlobData.DigestOf(manifest);
            await t.Client.PutManifestAsync(PushRepository(repository), tag, manifest, digest, ct);
            t.Tags.Add((repository, tag, digest));
            return manifest.Length;
        }, cancellationToken);
    }

    /// <summary>Runs one scenario against each live target (the order alternates with the scenario) and adds its rows.</summary>
    /// <remarks>
    /// <paramref name="only"/> restricts the scenario to that server; <paramref name="baseScenario"/> names the scenario
    /// whose row of the same server this one is compared with in the report.
    /// </remarks>
    private async Task ForEachTarget(int scenario, string name, bool hasBytes, Func<Target, Recorder, Task> body, Func<Target, Task>? prepare = null,
        string? only = null, string? baseScenario = null)
    {
        var order = scenario % 2 == 1 ? targets : targets.Reverse().ToList();
        foreach (var t in order)
        {
            if (only is not null && t.Name != only) continue;
            if (t.Dead)
            {
                rows.Add(new Row { Scenario = name, Server = t.Name, Note = "server had exited", BaseScenario = baseScenario });
                continue;
            }
            if (prepare is not null)
            {
                try
                {
                    await prepare(t);
                }
                catch (BenchmarkRequestException e)
                {
                    rows.Add(new Row { Scenario = name, Server = t.Name, Errors = 1, Samples = ["set-up failed: " + e.Message], BaseScenario = baseScenario });
                    Progress($"[{t.Name}] {name}: set-up failed: {e.Message}");
                    continue;
                }
            }
            var row = await MeasureAsync(name, t.Name, t.Server, hasBytes, recorder => body(t, recorder), baseScenario);
            if (t.Server.HasExited) t.Dead = true;
        }
    }

    /// <summary>The start row: time to ready, then a small untimed warm-up (JIT, pools) of every call the scenarios make.</summary>
    private async Task StartupRowAsync(Target t)
    {
        var recorder = new Recorder();
        if (options.Warmup)
        {
            Progress($"[{t.Name}] warm-up");
            const string repository = "warmup/w";
            var blobs = Enumerable.Range(0, 4).Select(i => new BlobSpec(BlobSpec.SeedFor(9, i), 256 * 1024)).ToArray();
            await recorder.RunAsync(blobs.Length, 4, async (i, ct) =>
            {
                await t.Client.PushBlobAsync(repository, blobs[i], t.PushMode, ct);
                return blobs[i].Length;
            }, cancellationToken);
            await recorder.RunOneAsync(async () =>
            {
                var chunked = new BlobSpec(BlobSpec.SeedFor(9, 100), 512 * 1024);
                await t.Client.PushBlobChunkedAsync(repository, chunked, 128 * 1024, cancellationToken);
                return chunked.Length;
            }, cancellationToken);
            await recorder.RunOneAsync(async () =>
            {
                await t.Client.PushSmallBlobAsync(repository, RegistryClient.ConfigBlob, configDigest, t.PushMode, cancellationToken);
                return 0;
            }, cancellationToken);
            var manifest = RegistryClient.BuildManifest(configDigest, RegistryClient.ConfigBlob.Length, blobs[0], -1);
            var digest = BlobData.DigestOf(manifest);
            await recorder.RunOneAsync(async () =>
            {
                await t.Client.PutManifestAsync(repository, "w", manifest, digest, cancellationToken);
                return 0;
            }, cancellationToken);
            await recorder.RunAsync(200, 8, (_, ct) => t.Client.GetManifestAsync(repository, "w", digest, ct), cancellationToken);
            await recorder.RunAsync(20, 4, (_, ct) => t.Client.ListTagsAsync(repository, ["w"], ct), cancellationToken);
            await recorder.RunAsync(8, 4, (i, ct) => t.Client.PullBlobAsync(repository, blobs[i % blobs.Length], ct), cancellationToken);
            await recorder.RunOneAsync(async () =>
            {
                var (status, _) = await t.Client.HeadBlobAsync(repository, blobs[0].Digest, cancellationToken);
                return status == HttpStatusCode.OK ? 0 : throw new BenchmarkRequestException($"HEAD warm-up blob: {(int)status}");
            }, cancellationToken);
            if (recorder.Errors + recorder.Violations > 0) Progress($"[{t.Name}] warm-up problems: {string.Join("; ", recorder.Samples)}");
        }
        var sample = t.Server.Sample();
        rows.Add(new Row
        {
            Scenario = options.Warmup ? "0b start + warm-up" : "0b start",
            Server = t.Name,
            IsStartup = true,
            Ops = recorder.Ops,
            Errors = recorder.Errors,
            Violations = recorder.Violations,
            Seconds = t.Server.ReadyAfter.TotalSeconds,
            PeakRssKiB = sample.PeakRssKiB,
            RssKiB = sample.RssKiB,
            CpuSeconds = sample.CpuSeconds,
            PeakSinceStart = true,
            Samples = recorder.Samples,
        });
    }

    public static void Progress(string message) => Console.Error.WriteLine(message);
}
