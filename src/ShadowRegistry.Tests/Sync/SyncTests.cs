using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using ShadowRegistry.Cli;
using ShadowRegistry.Sync;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Sync;

/// <summary>Two registries (in-memory storage) shared by the sync tests; every test works in repositories of its own.</summary>
public sealed class SyncRegistries : IAsyncLifetime
{
    public RegistryServer Source { get; private set; } = null!;
    public RegistryServer Destination { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Source = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        Destination = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
    }

    public async Task DisposeAsync()
    {
        await Source.DisposeAsync();
        await Destination.DisposeAsync();
    }
}

/// <summary>
/// Sync and check as one computation: the two cases that broke another registry's replication (a re-pointed tag and
/// an extra tag on the destination), a randomized comparison over hundreds of states, and faults on the wire.
/// </summary>
public sealed class SyncTests(SyncRegistries registries) : IClassFixture<SyncRegistries>
{
    private RegistryServer Source => registries.Source;
    private RegistryServer Destination => registries.Destination;

    [Fact]
    public async Task ARepointedTagAndAnExtraTagAreFixedByOneSyncAndTheCheckAgrees()
    {
        using var source = Source.CreateClient();
        using var destination = Destination.CreateClient();
        var (_, v1) = await source.PushImageAsync("cases/app", "v1", seed: 1);
        var (_, latest) = await source.PushImageAsync("cases/app", "latest", seed: 2);
        await destination.PushImageAsync("cases/app", "v1", seed: 1);          // equal
        await destination.PushImageAsync("cases/app", "latest", seed: 3);      // re-pointed: another manifest
        await destination.PushImageAsync("cases/app", "old", seed: 4);         // extra

        var before = await CheckAsync("cases/app");
        Assert.False(before.InSync);
        Assert.Equal(["cases/app:latest mutated", "cases/app:old extra"], before.Checks.Single().Describe().Select(l => string.Join(' ', l.Split(' ')[..2])));

        var sync = await SyncAsync("cases/app");
        Assert.True(sync.InSync, string.Join("\n", sync.Failures.Concat(sync.Checks.SelectMany(c => c.Describe()))));
        Assert.Equal(v1, (await destination.GetManifestAsync("cases/app", "v1")).Digest);
        Assert.Equal(latest, (await destination.GetManifestAsync("cases/app", "latest")).Digest);
        using (var gone = await destination.GetAsync("v2/cases/app/manifests/old")) Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.True((await CheckAsync("cases/app")).InSync);
        Assert.Equal(0, (await SyncAsync("cases/app")).Writes);
    }

    [Fact]
    public async Task KeepExtraLeavesTheDestinationsOwnTags()
    {
        using var source = Source.CreateClient();
        using var destination = Destination.CreateClient();
        await source.PushImageAsync("keep/app", "v1", seed: 1);
        await destination.PushImageAsync("keep/app", "mine", seed: 2);
        var sync = await SyncAsync("keep/app", new SyncOptions { KeepExtra = true });
        Assert.True(sync.InSync);
        Assert.Equal("local", (await destination.GetManifestAsync("keep/app", "mine")).Source);
        Assert.False((await CheckAsync("keep/app")).InSync); // mirroring rules: the extra tag makes them differ
    }

    /// <summary>
    /// --semver keeps only tags that are versions in the range, on both sides, for the sync and the check alike:
    /// tags outside it (or no version at all) are neither copied nor deleted nor compared; with --tag-regex a tag must
    /// pass both filters.
    /// </summary>
    [Fact]
    public async Task ASemverRangeLimitsThePlanAndTheCheckToTheSameTags()
    {
        using var source = Source.CreateClient();
        using var destination = Destination.CreateClient();
        const string repository = "semver/app";
        var seed = 10;
        foreach (var tag in new[] { "1.0.0", "v1.2.0", "1.5", "1.9.9-rc.1", "2.0.0", "latest", "build-7" })
            await source.PushImageAsync(repository, tag, seed: seed++);
        foreach (var tag in new[] { "1.3.0", "2.1.0", "latest" }) await destination.PushImageAsync(repository, tag, seed: seed++);
        var (src, dst) = ($"http://{Source.HostPort}/{repository}", $"http://{Destination.HostPort}/{repository}");

        var before = await RunCliAsync(false, "--semver", ">=1.2 <2", src, dst);
        Assert.Equal(SyncCommand.NotInSync, before.Exit);
        Assert.Equal(["1.3.0 extra", "1.5 missing", "v1.2.0 missing"], Differences(before.Output));

        var sync = await RunCliAsync(true, "--semver", ">=1.2 <2", src, dst);
        Assert.True(sync.Exit == SyncCommand.InSync, sync.Output + sync.Errors);
        Assert.Equal(["1.5", "2.1.0", "latest", "v1.2.0"], await TagsAsync(destination, repository));
        Assert.Equal(SyncCommand.InSync, (await RunCliAsync(false, "--semver", ">=1.2 <2", src, dst)).Exit);
        Assert.Contains("0 write(s)", (await RunCliAsync(true, "--semver", ">=1.2 <2", src, dst)).Output);
        // Unfiltered, the tags the range left out still differ.
        var all = await RunCliAsync(false, src, dst);
        Assert.Equal(SyncCommand.NotInSync, all.Exit);
        Assert.Equal(["1.0.0 missing", "1.9.9-rc.1 missing", "2.0.0 missing", "2.1.0 extra", "build-7 missing", "latest mutated"], Differences(all.Output));

        // Both filters: a version in range that also matches the pattern.
        var both = await RunCliAsync(false, "--semver", "^1", "--tag-regex", "^v", src, dst);
        Assert.Equal(SyncCommand.InSync, both.Exit);
        Assert.Equal(SyncCommand.Error, (await RunCliAsync(false, "--semver", ">=banana", src, dst)).Exit);

        static List<string> Differences(string output) => output.Split('\n').Where(l => l.StartsWith("  ", StringComparison.Ordinal))
            .Select(l => l.Trim().Split(' ')).Select(w => $"{w[0][(w[0].LastIndexOf(':') + 1)..]} {w[1]}").Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// A prefix source takes every repository under it from the catalog (not those merely starting with the same
    /// letters), each to the same name under the destination prefix, with --strip-prefix taking the source's off.
    /// </summary>
    [Fact]
    public async Task APrefixSourceSyncsEveryRepositoryUnderItFromTheCatalog()
    {
        using var source = Source.CreateClient();
        using var destination = Destination.CreateClient();
        var (_, a) = await source.PushImageAsync("nsprefix/team/a", "v1", seed: 31);
        var (_, c) = await source.PushImageAsync("nsprefix/team/b/c", "v2", seed: 32);
        await source.PushImageAsync("nsprefix/teamother/x", "v1", seed: 33);
        await destination.PushImageAsync("backup/b/c", "stale", seed: 34);
        var (src, dst) = ($"http://{Source.HostPort}/nsprefix/team/*", $"http://{Destination.HostPort}/backup/*");

        var sync = await RunCliAsync(true, "--strip-prefix", "nsprefix/team", src, dst);
        Assert.True(sync.Exit == SyncCommand.InSync, sync.Output + sync.Errors);
        Assert.Contains("in sync: backup/a ", sync.Output);
        Assert.Contains("in sync: backup/b/c ", sync.Output);
        Assert.Equal(a, (await destination.GetManifestAsync("backup/a", "v1")).Digest);
        Assert.Equal(c, (await destination.GetManifestAsync("backup/b/c", "v2")).Digest);
        Assert.Equal(["v2"], await TagsAsync(destination, "backup/b/c"));
        using (var never = await destination.GetAsync("v2/backup/x/tags/list")) Assert.Equal(HttpStatusCode.NotFound, never.StatusCode);
        Assert.Equal(SyncCommand.InSync, (await RunCliAsync(false, "--strip-prefix", "nsprefix/team", src, dst)).Exit);

        // Without stripping, the whole source name goes under the destination prefix.
        var whole = await RunCliAsync(false, src, dst);
        Assert.Equal(SyncCommand.NotInSync, whole.Exit);
        Assert.Contains("NOT in sync: backup/nsprefix/team/a ", whole.Output);
    }

    /// <summary>
    /// Off a terminal, progress is a plain line on standard error after each tag (tags and bytes done, bytes/s) and a
    /// summary at the end; standard output keeps the plan and the check as before.
    /// </summary>
    [Fact]
    public async Task OffATerminalProgressIsAPlainLinePerTag()
    {
        using var source = Source.CreateClient();
        await source.PushImageAsync("progress/app", "v1", seed: 51);
        await source.PushImageAsync("progress/app", "v2", seed: 52);
        var sync = await RunCliAsync(true, $"http://{Source.HostPort}/progress/app", $"http://{Destination.HostPort}/progress/app");
        Assert.Equal(SyncCommand.InSync, sync.Exit);
        var lines = sync.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^progress: progress/app:v1 done; 1/2 tags, [0-9.]+ KiB sent, [0-9.]+ [KMG]?i?B/s$", lines[0]);
        Assert.Matches(@"^progress: progress/app:v2 done; 2/2 tags, [0-9.]+ KiB sent", lines[1]);
        Assert.Matches(@"^synced 2/2 tags, [0-9.]+ KiB sent, .* in [0-9.]+ s$", lines[2]);
        Assert.DoesNotContain('\u001b', sync.Errors);
        Assert.Contains("copy progress/app:v1 -> sha256:", sync.Output);
        Assert.Contains("in sync: progress/app ", sync.Output);
    }

    /// <summary>On a terminal: one status line redrawn in place, cleared before each log line and at the end.</summary>
    [Fact]
    public void OnATerminalProgressIsOneStatusLineRedrawnInPlace()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var progress = new SyncProgress(clock);
        using var output = new StringWriter();
        using var errors = new StringWriter();
        using var display = new SyncProgressDisplay(progress, output, errors, terminal: true, clock);
        progress.Planned(4);
        progress.Sent(3 << 20);
        progress.Done("app:v1");
        clock.Advance(TimeSpan.FromMilliseconds(250)); // one redraw
        Assert.Equal("\r1/4 tags, 3.0 MiB sent, 12.0 MiB/s\u001b[K", errors.ToString());
        display.Log("copy app:v2");
        Assert.Equal("copy app:v2" + Environment.NewLine, output.ToString());
        Assert.Equal("\r1/4 tags, 3.0 MiB sent, 12.0 MiB/s\u001b[K\r\u001b[K", errors.ToString());
        clock.Advance(TimeSpan.FromMilliseconds(50)); // no redraw yet
        display.Finish();
        Assert.Equal("\r1/4 tags, 3.0 MiB sent, 12.0 MiB/s\u001b[K\r\u001b[K" + "synced 1/4 tags, 3.0 MiB sent, 10.0 MiB/s in 0.3 s" + Environment.NewLine,
            errors.ToString());
    }

    private static async Task<(int Exit, string Output, string Errors)> RunCliAsync(bool sync, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await SyncCommand.RunAsync(args, sync, stdout, stderr, _ => null, CancellationToken.None);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static async Task<List<string>> TagsAsync(HttpClient client, string repository)
    {
        var list = await client.GetFromJsonAsync<JsonObject>($"v2/{repository}/tags/list");
        return list!["tags"]!.AsArray().Select(t => t!.GetValue<string>()).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Random source and destination states — adds, deletes, re-pointed tags, shared and unshared blobs,
    /// multi-platform indexes, referrers — each synced once: then the check says in sync, every destination manifest is
    /// byte-identical to the source's, and a second sync writes nothing.
    /// </summary>
    [Fact]
    public async Task AfterOneSyncRandomStatesAreAlwaysInSyncAndASecondSyncWritesNothing()
    {
        using var source = Source.CreateClient();
        using var destination = Destination.CreateClient();
        const int trials = 200;
        for (var trial = 0; trial < trials; trial++)
        {
            var random = new Random(trial);
            var repository = $"random/t{trial}";
            var images = new List<(byte[] Manifest, string MediaType)>();
            // A small pool of images both sides draw from: shared blobs, shared and differing manifests.
            for (var i = 0; i < 4; i++) images.Add(await PushRandomImageAsync(source, destination, repository, random, trial * 10 + i));
            var tags = Enumerable.Range(0, 6).Select(i => $"tag{i}").ToArray();
            foreach (var tag in tags)
            {
                if (random.Next(4) > 0) await PutAsync(source, repository, tag, images[random.Next(images.Count)]);
                switch (random.Next(4))
                {
                    case 0: break; // absent on the destination
                    case 1: await PutAsync(destination, repository, tag, images[random.Next(images.Count)]); break; // maybe equal, maybe re-pointed
                    default: await PutAsync(destination, repository, tag, images[random.Next(images.Count)]); break;
                }
            }
            if (random.Next(3) == 0) await AddReferrerAsync(source, repository, images[random.Next(images.Count)], trial);

            var sync = await SyncAsync(repository);
            Assert.True(sync.InSync, $"trial {trial}: " + string.Join("\n", sync.Failures.Concat(sync.Checks.SelectMany(c => c.Describe()))));
            foreach (var tag in tags)
            {
                using var fromSource = await GetRawAsync(source, repository, tag);
                using var fromDestination = await GetRawAsync(destination, repository, tag);
                Assert.Equal(fromSource.StatusCode, fromDestination.StatusCode);
                if (fromSource.StatusCode == HttpStatusCode.OK)
                    Assert.Equal(await fromSource.Content.ReadAsByteArrayAsync(), await fromDestination.Content.ReadAsByteArrayAsync());
            }
            var again = await SyncAsync(repository);
            Assert.True(again.InSync);
            Assert.Equal(0, again.Writes);
        }
    }

    [Fact]
    public async Task FaultsAreRetriedOrReportedPerTagAndNeverLeaveATagOnIncompleteContent()
    {
        using var source = Source.CreateClient();
        using var destination = Destination.CreateClient();
        await source.PushImageAsync("faults/app", "good", seed: 1, layers: 3);
        await source.PushImageAsync("faults/app", "broken", seed: 2, layers: 2);
        await source.PushImageAsync("faults/app", "slow", seed: 3, layers: 1);

        var faults = new FaultInjector
        {
            // The first manifest read of the source answers 429 with Retry-After; every blob download breaks off once.
            RateLimitFirst = request => request.Method == HttpMethod.Get && request.RequestUri!.AbsolutePath.Contains("/tags/list"),
            DropOnce = request => request.Method == HttpMethod.Get && request.RequestUri!.AbsolutePath.Contains("/blobs/sha256:"),
        };
        var destinationFaults = new FaultInjector
        {
            // The destination refuses one tag for good.
            AlwaysFail = request => request.Method == HttpMethod.Put && request.RequestUri!.AbsolutePath.EndsWith("/manifests/broken"),
        };
        var report = await SyncAsync("faults/app", sourceHandler: faults, destinationHandler: destinationFaults);
        Assert.True(faults.RateLimited > 0 && faults.Dropped > 0, $"faults injected: 429 {faults.RateLimited}, drops {faults.Dropped}");
        Assert.Equal(["faults/app:broken"], report.Failures.Select(f => f[..f.IndexOf(": ", StringComparison.Ordinal)]));
        Assert.False(report.InSync);
        Assert.Equal(["faults/app:broken missing"], report.Checks.Single().Describe().Select(l => string.Join(' ', l.Split(' ')[..2])));

        // Whatever landed is complete: every tag on the destination pulls whole.
        foreach (var tag in new[] { "good", "slow" }) await PullWholeAsync(destination, "faults/app", tag);
        using (var absent = await destination.GetAsync("v2/faults/app/manifests/broken")) Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);

        // The fault gone, the next sync finishes the job.
        Assert.True((await SyncAsync("faults/app")).InSync);
    }

    /// <summary>
    /// A blob copy whose connection drops mid-way resumes from where the destination's upload session stands (asked
    /// with a GET on the session), reading the source again with a Range request from there: neither side sees the
    /// whole blob twice, and the blob arrives byte-identical. Once with the source's download breaking off, once with
    /// an upload chunk breaking off on its way to the destination.
    /// </summary>
    [Theory]
    [InlineData("source")]
    [InlineData("destination")]
    public async Task ABlobCopyThatDropsMidwayResumesFromTheOffsetTheDestinationReports(string side)
    {
        const int size = 2 << 20, chunk = 128 << 10;
        var repository = $"resume/{side}";
        var blob = OciHttp.RandomBytes(size, 4242 + side.Length);
        using (var source = Source.CreateClient()) await source.PushBlobAsync(repository, blob);
        var digest = ShadowRegistry.Domain.Digest.Parse(OciHttp.Sha256(blob));
        // Source: the first download breaks off at 600 KiB, in the fifth chunk. Destination: the third chunk breaks off half-way.
        var downloads = new WireCounter { CutDownloadAt = side == "source" ? 600 << 10 : null };
        var uploads = new WireCounter { CutUploadNumber = side == "destination" ? 3 : null };
        using var from = new OciRegistryClient(Source.BaseAddress, null, downloads);
        // Attempts to spare: until the registry has seen the broken chunk's connection go, it holds the session busy
        // and answers 416 (a bounded wait with back-off, longer on a loaded machine).
        using var to = new OciRegistryClient(Destination.BaseAddress, null, uploads, maxAttempts: 8) { UploadChunkSize = chunk };
        long reported = 0;
        await to.CopyBlobAsync(from, repository, repository, digest, size, CancellationToken.None, n => Interlocked.Add(ref reported, n));

        Assert.Equal(1, downloads.Cuts + uploads.Cuts);
        // Later downloads asked for the rest only, from the chunk boundary the destination reported (more than one
        // when the registry still held the session busy, 416, at the first resume).
        var resumed = downloads.Ranges.OfType<long>().Distinct().ToList();
        Assert.Equal([side == "source" ? 4 * chunk : 2 * chunk], resumed);
        Assert.Null(downloads.Ranges[0]);
        // Not all of it twice: the drop costs about one chunk (a few at most with busy retries).
        Assert.True(downloads.Bytes < size * 3 / 2, $"{downloads.Bytes} bytes downloaded for a {size}-byte blob");
        Assert.True(uploads.Bytes < size * 3 / 2, $"{uploads.Bytes} bytes uploaded for a {size}-byte blob");
        Assert.Equal(uploads.Bytes, reported);
        using var destination = Destination.CreateClient();
        Assert.Equal(blob, await destination.GetByteArrayAsync($"v2/{repository}/blobs/{digest}"));
    }

    /// <summary>
    /// In front of a real registry: counts blob bytes that cross the wire each way and the Range of each blob download,
    /// and can break the first download off after some bytes, or one upload chunk half-way, as a dropped connection does.
    /// </summary>
    private sealed class WireCounter() : DelegatingHandler(new SocketsHttpHandler())
    {
        public long? CutDownloadAt { get; init; }
        public int? CutUploadNumber { get; init; }
        public long Bytes;
        public int Cuts;
        public List<long?> Ranges { get; } = [];
        private int uploadNumber;
        private int downloadNumber;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            // A cut upload tears its connection down, as a real drop does (the registry then sees it gone).
            using var connection = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (request.Content is { } content && path.Contains("/blobs/uploads/") && (request.Method == HttpMethod.Patch || request.Method == HttpMethod.Put))
            {
                var cut = ++uploadNumber == CutUploadNumber ? content.Headers.ContentLength / 2 : null;
                var counted = new StreamContent(new CountingStream(await content.ReadAsStreamAsync(cancellationToken), cut, n => Interlocked.Add(ref Bytes, n), connection.Cancel));
                foreach (var header in content.Headers) counted.Headers.TryAddWithoutValidation(header.Key, header.Value);
                request.Content = counted;
                if (cut is not null) Cuts++;
            }
            var response = await base.SendAsync(request, connection.Token);
            if (request.Method != HttpMethod.Get || !path.Contains("/blobs/sha256:") || !response.IsSuccessStatusCode) return response;
            lock (Ranges) Ranges.Add(request.Headers.Range?.Ranges.Single().From);
            // Counted as the client reads it: a download it gives up on counts only what it took.
            var cutAt = Interlocked.Increment(ref downloadNumber) == 1 ? CutDownloadAt : null;
            if (cutAt is not null) Cuts++;
            var replaced = new HttpResponseMessage(response.StatusCode)
            {
                Content = new StreamContent(new CountingStream(await response.Content.ReadAsStreamAsync(cancellationToken), cutAt, n => Interlocked.Add(ref Bytes, n), () => { })),
            };
            foreach (var header in response.Content.Headers) replaced.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            return replaced;
        }
    }

    /// <summary>Reads through, counting; with a cut, fails after that many bytes as a dropped connection does.</summary>
    private sealed class CountingStream(Stream inner, long? cut, Action<int> counted, Action dropped) : Stream
    {
        private long position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (cut is { } c && position >= c)
            {
                dropped();
                throw new IOException("connection dropped (injected)");
            }
            var limit = cut is { } at ? (int)Math.Min(buffer.Length, at - position) : buffer.Length;
            var read = await inner.ReadAsync(buffer[..limit], cancellationToken);
            position += read;
            counted(read);
            return read;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private async Task<SyncReport> SyncAsync(string repository, SyncOptions? options = null, HttpMessageHandler? sourceHandler = null,
        HttpMessageHandler? destinationHandler = null)
    {
        var (from, to) = References(repository);
        using var source = new OciRegistryClient(from.Registry, null, sourceHandler);
        using var destination = new OciRegistryClient(to.Registry, null, destinationHandler);
        return await new Syncer(source, from, destination, to, options ?? new SyncOptions()).SyncAsync(CancellationToken.None);
    }

    private async Task<SyncReport> CheckAsync(string repository)
    {
        var (from, to) = References(repository);
        using var source = new OciRegistryClient(from.Registry, null);
        using var destination = new OciRegistryClient(to.Registry, null);
        return await new Syncer(source, from, destination, to, new SyncOptions()).CheckAsync(CancellationToken.None);
    }

    private (RegistryReference From, RegistryReference To) References(string repository) =>
        (RegistryReference.Parse($"http://{Source.HostPort}/{repository}"), RegistryReference.Parse($"http://{Destination.HostPort}/{repository}"));

    /// <summary>An image or a two-platform index, pushed (content only, no tag) to both sides so either may tag it.</summary>
    private static async Task<(byte[], string)> PushRandomImageAsync(HttpClient source, HttpClient destination, string repository, Random random, int seed)
    {
        async Task<(byte[], string)> ImageAsync(int imageSeed)
        {
            var layers = new JsonArray();
            var configBytes = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{imageSeed}}}");
            var configDigest = await BothAsync(source, destination, repository, configBytes, random.Next(2) == 0);
            // Shared blobs: a layer drawn from a small pool; unshared: one of its own.
            var shared = OciHttp.RandomBytes(300, 7000 + random.Next(3));
            var own = OciHttp.RandomBytes(200 + imageSeed % 50, 8000 + imageSeed);
            foreach (var layer in new[] { shared, own })
                layers.Add(OciHttp.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", await BothAsync(source, destination, repository, layer, random.Next(2) == 0), layer.Length));
            var manifest = new JsonObject
            {
                ["schemaVersion"] = 2,
                ["mediaType"] = OciHttp.OciManifest,
                ["config"] = OciHttp.Descriptor("application/vnd.oci.image.config.v1+json", configDigest, configBytes.Length),
                ["layers"] = layers,
            };
            var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
            using var put = await source.PutManifestAsync(repository, OciHttp.Sha256(bytes), bytes, OciHttp.OciManifest);
            await put.ExpectAsync(HttpStatusCode.Created);
            return (bytes, OciHttp.OciManifest);
        }

        if (random.Next(3) > 0) return await ImageAsync(seed);
        // Multi-platform: an index of two images.
        var (amd, _) = await ImageAsync(seed * 2 + 1000);
        var (arm, _) = await ImageAsync(seed * 2 + 1001);
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = "application/vnd.oci.image.index.v1+json",
            ["manifests"] = new JsonArray(
                Platform(amd, "amd64"),
                Platform(arm, "arm64")),
        };
        var indexBytes = Encoding.UTF8.GetBytes(index.ToJsonString());
        using var response = await source.PutManifestAsync(repository, OciHttp.Sha256(indexBytes), indexBytes, "application/vnd.oci.image.index.v1+json");
        await response.ExpectAsync(HttpStatusCode.Created);
        return (indexBytes, "application/vnd.oci.image.index.v1+json");

        static JsonObject Platform(byte[] manifest, string architecture)
        {
            var descriptor = OciHttp.Descriptor(OciHttp.OciManifest, OciHttp.Sha256(manifest), manifest.Length);
            descriptor["platform"] = new JsonObject { ["architecture"] = architecture, ["os"] = "linux" };
            return descriptor;
        }
    }

    /// <summary>Pushes a blob to the source, and sometimes to the destination too (already there: the sync skips it).</summary>
    private static async Task<string> BothAsync(HttpClient source, HttpClient destination, string repository, byte[] blob, bool alsoDestination)
    {
        var digest = await source.PushBlobAsync(repository, blob);
        if (alsoDestination) await destination.PushBlobAsync(repository, blob);
        return digest;
    }

    /// <summary>Tags an image on one side, pushing what that side lacks of it first (children of an index included).</summary>
    private async Task PutAsync(HttpClient client, string repository, string tag, (byte[] Manifest, string MediaType) image)
    {
        if (client.BaseAddress == Destination.BaseAddress)
        {
            // Make the destination able to hold it: sync the content by digest from the source.
            var (origin, target) = References(repository);
            using var source = new OciRegistryClient(origin.Registry, null);
            using var destination = new OciRegistryClient(target.Registry, null);
            var digest = OciHttp.Sha256(image.Manifest);
            var single = new Syncer(source, origin, destination, target, new SyncOptions());
            await single.CopyContentAsync(repository, repository, ShadowRegistry.Domain.Digest.Parse(digest), CancellationToken.None);
        }
        using var response = await client.PutManifestAsync(repository, tag, image.Manifest, image.MediaType);
        await response.ExpectAsync(HttpStatusCode.Created);
    }

    private static async Task AddReferrerAsync(HttpClient client, string repository, (byte[] Manifest, string MediaType) subject, int seed)
    {
        var config = Encoding.UTF8.GetBytes("{}");
        var configDigest = await client.PushBlobAsync(repository, config);
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["artifactType"] = "application/vnd.example.sbom",
            ["config"] = OciHttp.Descriptor("application/vnd.oci.empty.v1+json", configDigest, config.Length),
            ["layers"] = new JsonArray(),
            ["subject"] = OciHttp.Descriptor(subject.MediaType, OciHttp.Sha256(subject.Manifest), subject.Manifest.Length),
            ["annotations"] = new JsonObject { ["seed"] = seed.ToString() },
        };
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        using var response = await client.PutManifestAsync(repository, OciHttp.Sha256(bytes), bytes, OciHttp.OciManifest);
        await response.ExpectAsync(HttpStatusCode.Created);
    }

    private static async Task<HttpResponseMessage> GetRawAsync(HttpClient client, string repository, string reference)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{reference}");
        foreach (var type in OciRegistryClient.ManifestTypes) request.Headers.Accept.ParseAdd(type);
        return await client.SendAsync(request);
    }

    private static async Task PullWholeAsync(HttpClient client, string repository, string tag)
    {
        using var response = await GetRawAsync(client, repository, tag);
        await response.ExpectAsync(HttpStatusCode.OK);
        var manifest = JsonNode.Parse(await response.Content.ReadAsByteArrayAsync())!;
        foreach (var digest in manifest["layers"]!.AsArray().Select(l => l!["digest"]!.GetValue<string>()).Append(manifest["config"]!["digest"]!.GetValue<string>()))
            Assert.Equal(digest, OciHttp.Sha256(await client.GetByteArrayAsync($"v2/{repository}/blobs/{digest}")));
    }

    /// <summary>Faults on the wire in front of a real registry: 429 with Retry-After, a body that breaks off, a request that always fails.</summary>
    private sealed class FaultInjector() : DelegatingHandler(new SocketsHttpHandler())
    {
        public Func<HttpRequestMessage, bool>? RateLimitFirst { get; init; }
        public Func<HttpRequestMessage, bool>? DropOnce { get; init; }
        public Func<HttpRequestMessage, bool>? AlwaysFail { get; init; }
        public int RateLimited;
        public int Dropped;
        private readonly HashSet<string> dropped = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (AlwaysFail?.Invoke(request) == true)
                return new HttpResponseMessage(HttpStatusCode.InternalServerError) { Content = new StringContent("{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"injected\"}]}") };
            if (RateLimitFirst?.Invoke(request) == true && Interlocked.Increment(ref RateLimited) == 1)
            {
                var limited = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Content = new StringContent("{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}") };
                limited.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
                return limited;
            }
            var response = await base.SendAsync(request, cancellationToken);
            if (DropOnce?.Invoke(request) == true && response.IsSuccessStatusCode)
            {
                lock (dropped) if (!dropped.Add(request.RequestUri!.AbsolutePath)) return response;
                Interlocked.Increment(ref Dropped);
                var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                var broken = new HttpResponseMessage(response.StatusCode) { Content = new StreamContent(new BreakingStream(body, body.Length / 2)) };
                foreach (var header in response.Content.Headers) broken.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
                response.Dispose();
                return broken;
            }
            return response;
        }
    }

    /// <summary>Gives the first <paramref name="cut"/> bytes, then fails as a dropped connection does.</summary>
    private sealed class BreakingStream(byte[] content, int cut) : MemoryStream(content, 0, cut)
    {
        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = base.Read(buffer, offset, count);
            return read > 0 ? read : throw new IOException("connection dropped (injected)");
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await base.ReadAsync(buffer, cancellationToken);
            return read > 0 ? read : throw new IOException("connection dropped (injected)");
        }
    }
}
