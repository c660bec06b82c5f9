using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ShadowRegistry.Sync;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Sync;

/// <summary>
/// Server-side replication between two registries in this process: registry A replicates <c>apps/**</c> to B under
/// the prefix <c>mirror</c>. Events are awaited through the replicator's completion signal, the reconcile is driven by
/// a fake clock, and the destination is taken down and brought back by a gate in front of it.
/// </summary>
public sealed class ReplicationTests
{
    /// <summary>What the service processes from now on; the function waits (at most 60 s) for the next result that matches.</summary>
    private static Func<Func<ReplicationResult, bool>, Task<ReplicationResult>> Watch(ReplicationService replication)
    {
        var results = Channel.CreateUnbounded<ReplicationResult>();
        replication.Processed += result => results.Writer.TryWrite(result);
        return async match =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                var result = await results.Reader.ReadAsync(timeout.Token);
                if (match(result)) return result;
            }
        };
    }

    [Fact]
    public async Task PushesPromotionsReferrersAndTagDeletesReachTheDestinationAndTheReconcileHealsALostEvent()
    {
        var clock = new FakeTimeProvider();
        var gate = new GateSwitch();
        await using var b = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        await using var a = await RegistryServer.StartAsync(services =>
            {
                services.AddSingleton<TimeProvider>(clock);
                services.AddSingleton(new ReplicationTransport { DestinationHandler = _ => new Gate(gate) });
            },
            "--Registry:Storage:Driver", "inmemory",
            "--Replication:Destinations:standby:Url", $"{b.BaseAddress}mirror",
            "--Replication:Destinations:standby:Repositories:0", "apps/**",
            "--Replication:ReconcileInterval", "00:10:00",
            "--Replication:MaxAttempts", "1",
            "--Replication:RequestAttempts", "1");
        var replication = a.Services.GetRequiredService<ReplicationService>();
        var NextAsync = Watch(replication);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        // A push appears on B once its event is processed.
        var (_, v1) = await clientA.PushImageAsync("apps/web", "v1", seed: 1);
        var pushed = await NextAsync(r => r.Tag == "v1");
        Assert.True(pushed.Succeeded, pushed.Error);
        Assert.Equal(v1, (await clientB.GetManifestAsync("mirror/apps/web", "v1")).Digest);

        // A tag deleted on A disappears from B (the manifest stays: another tag may share it).
        await clientA.PushImageAsync("apps/web", "v2", seed: 2);
        Assert.True((await NextAsync(r => r.Tag == "v2")).Succeeded);
        using (var delete = await clientA.DeleteAsync("v2/apps/web/manifests/v2")) await delete.ExpectAsync(HttpStatusCode.Accepted);
        var deleted = await NextAsync(r => r.Tag == "v2");
        Assert.True(deleted.Succeeded, deleted.Error);
        using (var gone = await clientB.GetAsync("v2/mirror/apps/web/manifests/v2")) Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);

        // A referrer pushed by digest only travels as content.
        var referrer = await PushReferrerAsync(clientA, "apps/web", v1);
        var copied = await NextAsync(r => r.Repository == "apps/web" && r.Tag is null && !r.Reconcile);
        Assert.True(copied.Succeeded, copied.Error);
        using (var there = await clientB.GetAsync($"v2/mirror/apps/web/manifests/{referrer}")) await there.ExpectAsync(HttpStatusCode.OK);

        // A promotion writes base tags: they replicate like pushes.
        using (var created = await clientA.PutAsync("api/v1/changes/c1", JsonContent.Create(new JsonObject()))) await created.ExpectAsync(HttpStatusCode.Created);
        var (_, rc) = await clientA.PushImageAsync("changes/c1/apps/web", "rc", seed: 3);
        using (var promoted = await clientA.PostAsync("api/v1/changes/c1/promote", null)) await promoted.ExpectAsync(HttpStatusCode.OK);
        Assert.True((await NextAsync(r => r.Tag == "rc")).Succeeded);
        Assert.Equal(rc, (await clientB.GetManifestAsync("mirror/apps/web", "rc")).Digest);

        // Outside the repository filter: never replicated.
        await clientA.PushImageAsync("other/thing", "v1", seed: 4);

        // The destination down: the event fails (and, with one attempt, is given up), the push itself does not.
        gate.Down = true;
        var (_, v3) = await clientA.PushImageAsync("apps/web", "v3", seed: 5);
        var lost = await NextAsync(r => r.Tag == "v3");
        Assert.False(lost.Succeeded);
        clock.Advance(TimeSpan.FromMinutes(1));
        var status = replication.Status["standby"];
        Assert.Equal(TimeSpan.FromMinutes(1), status.Lag);
        Assert.Null(status.LastReconcile);
        using (var missing = await clientB.GetAsync("v2/mirror/apps/web/manifests/v3")) Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        // Back up: the next reconcile tick heals it.
        gate.Down = false;
        clock.Advance(TimeSpan.FromMinutes(9));
        var reconciled = await NextAsync(r => r.Reconcile);
        Assert.True(reconciled.Succeeded, reconciled.Error);
        Assert.True(reconciled.Writes > 0);
        Assert.Equal(v3, (await clientB.GetManifestAsync("mirror/apps/web", "v3")).Digest);
        status = replication.Status["standby"];
        Assert.Equal(TimeSpan.Zero, status.Lag);
        Assert.Equal(true, status.LastReconcileSucceeded);
        Assert.Equal(1, status.Failures);

        // The sync check agrees, and the filtered-out repository never reached B.
        using (var from = new OciRegistryClient(a.BaseAddress, null))
        using (var to = new OciRegistryClient(b.BaseAddress, null))
        {
            var check = await new Syncer(from, RegistryReference.Parse($"http://{a.HostPort}/apps/web"), to,
                RegistryReference.Parse($"http://{b.HostPort}/mirror/apps/web"), new SyncOptions()).CheckAsync(CancellationToken.None);
            Assert.True(check.InSync, string.Join("\n", check.Checks.SelectMany(c => c.Describe())));
        }
        using (var never = await clientB.GetAsync("v2/mirror/other/thing/tags/list")) Assert.Equal(HttpStatusCode.NotFound, never.StatusCode);

        // A second reconcile has nothing to do; the status is in the metrics.
        clock.Advance(TimeSpan.FromMinutes(10));
        var quiet = await NextAsync(r => r.Reconcile);
        Assert.True(quiet.Succeeded, quiet.Error);
        Assert.Equal(0, quiet.Writes);
        var metrics = await clientA.GetStringAsync("metrics");
        Assert.Contains("shadowregistry_replication_reconciles_total{destination=\"standby\",outcome=\"in_sync\"} 2", metrics);
        Assert.Contains("shadowregistry_replication_events_total{destination=\"standby\",outcome=\"failed\"} 1", metrics);
        Assert.Contains("shadowregistry_replication_lag_seconds{destination=\"standby\"} 0", metrics);
    }

    [Fact]
    public async Task AFailedEventIsRetriedAfterItsDelay()
    {
        var clock = new FakeTimeProvider();
        var gate = new GateSwitch { Down = true };
        await using var b = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        await using var a = await RegistryServer.StartAsync(services =>
            {
                services.AddSingleton<TimeProvider>(clock);
                services.AddSingleton(new ReplicationTransport { DestinationHandler = _ => new Gate(gate) });
            },
            "--Registry:Storage:Driver", "inmemory",
            "--Replication:Destinations:standby:Url", b.BaseAddress.ToString(),
            "--Replication:RetryDelay", "00:00:30",
            "--Replication:RequestAttempts", "1");
        var replication = a.Services.GetRequiredService<ReplicationService>();
        var results = Channel.CreateUnbounded<ReplicationResult>();
        replication.Processed += result => results.Writer.TryWrite(result);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var clientA = a.CreateClient();

        var (_, v1) = await clientA.PushImageAsync("app", "v1", seed: 1);
        Assert.False((await results.Reader.ReadAsync(timeout.Token)).Succeeded);
        Assert.Equal(1, replication.Status["standby"].Pending);
        gate.Down = false;
        clock.Advance(TimeSpan.FromSeconds(30));
        var retried = await results.Reader.ReadAsync(timeout.Token);
        Assert.True(retried.Succeeded, retried.Error);
        Assert.Equal(0, replication.Status["standby"].Pending);
        using var clientB = b.CreateClient();
        Assert.Equal(v1, (await clientB.GetManifestAsync("app", "v1")).Digest);
    }

    /// <summary>
    /// A reconcile that cannot run at all (here the registry cannot read its own catalog) still shows in the status
    /// and the metrics: when it ran, that it failed, and the failure count.
    /// </summary>
    [Fact]
    public async Task AReconcileThatCannotRunIsCountedAsFailedInTheStatusAndTheMetrics()
    {
        var clock = new FakeTimeProvider();
        await using var a = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock),
            "--Registry:Storage:Driver", "inmemory",
            "--Replication:Destinations:standby:Url", "http://127.0.0.1:1/",
            "--Replication:SourceUrl", "http://127.0.0.1:1/",
            "--Replication:ReconcileInterval", "00:10:00",
            "--Replication:RequestAttempts", "1");
        var replication = a.Services.GetRequiredService<ReplicationService>();
        var results = Channel.CreateUnbounded<ReplicationResult>();
        replication.Processed += result => results.Writer.TryWrite(result);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var client = a.CreateClient();
        Assert.Contains("shadowregistry_replication_lag_seconds{destination=\"standby\"} 0", await client.GetStringAsync("metrics"));

        clock.Advance(TimeSpan.FromMinutes(10));
        var reconciled = await results.Reader.ReadAsync(timeout.Token);
        Assert.True(reconciled.Reconcile);
        Assert.False(reconciled.Succeeded);
        var status = replication.Status["standby"];
        Assert.Equal(clock.GetUtcNow(), status.LastReconcile);
        Assert.Equal(false, status.LastReconcileSucceeded);
        Assert.Equal(1, status.Failures);
        var metrics = await client.GetStringAsync("metrics");
        Assert.Contains("shadowregistry_replication_reconciles_total{destination=\"standby\",outcome=\"failed\"} 1", metrics);
        Assert.Contains($"shadowregistry_replication_last_reconcile_timestamp_seconds{{destination=\"standby\"}} {clock.GetUtcNow().ToUnixTimeSeconds()}", metrics);
    }

    /// <summary>
    /// Authentication on both sides, anonymous pull off: the replicator reads its own registry with tokens from its
    /// own token service (repositories and the catalog, for the reconcile) and writes with the destination's
    /// configured credentials through the destination's token endpoint.
    /// </summary>
    [Fact]
    public async Task WithAuthenticationOnBothSidesItReadsWithItsOwnTokensAndWritesWithTheDestinationsCredentials()
    {
        await using var b = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false, "--Registry:Storage:Driver", "inmemory"));
        await using var a = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false, "--Registry:Storage:Driver", "inmemory",
            "--Replication:Destinations:b:Url", b.BaseAddress.ToString(),
            "--Replication:Destinations:b:Username", AuthTestSupport.Writer.Name,
            "--Replication:Destinations:b:Password", AuthTestSupport.Writer.Password,
            "--Replication:ReconcileInterval", "00:00:01"));
        var replication = a.Services.GetRequiredService<ReplicationService>();
        var NextAsync = Watch(replication);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        var (_, v1) = await AuthTestSupport.PushAsWriterAsync(a, clientA, "secured/app", "v1", seed: 1);
        var pushed = await NextAsync(r => r.Tag == "v1");
        Assert.True(pushed.Succeeded, pushed.Error);
        var reconciled = await NextAsync(r => r.Reconcile);
        Assert.True(reconciled.Succeeded, reconciled.Error);

        var token = await AuthTestSupport.TokenAsync(clientB, AuthTestSupport.Reader, "repository:secured/app:pull");
        using var reader = AuthTestSupport.WithToken(b, token);
        Assert.Equal(v1, (await reader.GetManifestAsync("secured/app", "v1")).Digest);
    }

    /// <summary>
    /// A repository that shadows an upstream: only its local tags replicate. Deleting a local tag that hid an upstream
    /// tag of the same name deletes it on the destination (it does not copy the upstream's image there), and the
    /// reconcile does not bring the upstream's tags along.
    /// </summary>
    [Fact]
    public async Task OnlyLocalTagsReplicateNeverTheOnesAShadowedUpstreamShowsThrough()
    {
        using var upstream = FakeUpstream.Start();
        var remote = FakeUpstream.Image(7);
        upstream.ServeManifest("team/app", "shared", remote.Manifest);
        upstream.ServeManifest("team/app", "v1", remote.Manifest);
        upstream.ServeBlob("team/app", remote.Config);
        upstream.ServeBlob("team/app", remote.Layer);
        upstream.ServeTags("team/app", "shared", "v1");
        var clock = new FakeTimeProvider();
        await using var b = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        await using var a = await RegistryServer.StartAsync(services => services.AddSingleton<TimeProvider>(clock), upstream.RegistryArgs(
            "--Registry:Storage:Driver", "inmemory",
            "--Replication:Destinations:standby:Url", b.BaseAddress.ToString(),
            "--Replication:ReconcileInterval", "00:10:00",
            "--Replication:RequestAttempts", "1"));
        var replication = a.Services.GetRequiredService<ReplicationService>();
        var NextAsync = Watch(replication);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        await clientA.PushImageAsync("team/app", "shared", seed: 1);
        Assert.True((await NextAsync(r => r.Tag == "shared")).Succeeded);
        var (_, mine) = await clientA.PushImageAsync("team/app", "mine", seed: 2);
        Assert.True((await NextAsync(r => r.Tag == "mine")).Succeeded);
        using (var delete = await clientA.DeleteAsync("v2/team/app/manifests/shared")) await delete.ExpectAsync(HttpStatusCode.Accepted);
        Assert.Equal(remote.Digest, (await clientA.GetManifestAsync("team/app", "shared")).Digest); // the upstream's shows through here
        var deleted = await NextAsync(r => r.Tag == "shared");
        Assert.True(deleted.Succeeded, deleted.Error);

        clock.Advance(TimeSpan.FromMinutes(10));
        var reconciled = await NextAsync(r => r.Reconcile);
        Assert.True(reconciled.Succeeded, reconciled.Error);
        var tags = await clientB.GetFromJsonAsync<JsonObject>($"v2/{deleted.Repository}/tags/list");
        Assert.Equal(["mine"], tags!["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(mine, (await clientB.GetManifestAsync(deleted.Repository!, "mine")).Digest);
    }

    /// <summary>Pushes an SBOM-like artifact whose subject is <paramref name="subject"/> (an OCI image manifest), by digest; returns its digest.</summary>
    internal static async Task<string> PushReferrerAsync(HttpClient client, string repository, string subject)
    {
        var config = Encoding.UTF8.GetBytes("{}");
        var configDigest = await client.PushBlobAsync(repository, config);
        var subjectBytes = await client.GetByteArrayAsync($"v2/{repository}/manifests/{subject}");
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = OciHttp.OciManifest,
            ["artifactType"] = "application/vnd.example.sbom",
            ["config"] = OciHttp.Descriptor("application/vnd.oci.empty.v1+json", configDigest, config.Length),
            ["layers"] = new JsonArray(),
            ["subject"] = OciHttp.Descriptor(OciHttp.OciManifest, subject, subjectBytes.Length),
        };
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        var digest = OciHttp.Sha256(bytes);
        using var response = await client.PutManifestAsync(repository, digest, bytes, OciHttp.OciManifest);
        await response.ExpectAsync(HttpStatusCode.Created);
        return digest;
    }

    private sealed class GateSwitch
    {
        public volatile bool Down;
    }

    /// <summary>The destination as the replicator reaches it: unreachable while the switch is down.</summary>
    private sealed class Gate(GateSwitch state) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            state.Down ? throw new HttpRequestException("destination down (injected)") : base.SendAsync(request, cancellationToken);
    }
}
