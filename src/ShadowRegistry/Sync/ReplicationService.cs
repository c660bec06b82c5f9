using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;
using ShadowRegistry.Domain;
using ShadowRegistry.Observability;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Sync;

/// <summary>What one replication step did: an event (a tag or a pushed referrer) or a reconcile, for one destination.</summary>
public sealed record ReplicationResult(string Destination, string? Repository, string? Tag, bool Reconcile, bool Succeeded, int Writes, string? Error);

/// <summary>Where replication stands for one destination.</summary>
public sealed record ReplicationStatus(DateTimeOffset? LastReconcile, bool? LastReconcileSucceeded, int Pending, TimeSpan Lag, long Failures);

/// <summary>How the replicator reaches its destinations; tests put a fault gate in front of one here.</summary>
public sealed class ReplicationTransport
{
    /// <summary>The handler for a destination's requests by destination name, or null for the default one.</summary>
    public Func<string, HttpMessageHandler?> DestinationHandler { get; init; } = _ => null;
}

/// <summary>
/// Server-side replication. Pushes, tag deletes and promotions in the base namespace are queued (never blocking or
/// failing the client's request) and replayed to every configured destination whose repository patterns match, by
/// running the sync plan for that one tag; failures are retried with doubling delays and then left to the periodic
/// reconcile, which runs the full plan for every replicated repository, so a missed event always heals. Reads this
/// registry over HTTP like any other source (through its own token service when authentication is on).
/// </summary>
public sealed class ReplicationService(
    IOptions<ReplicationOptions> options,
    IServer server,
    IServiceProvider services,
    RegistryMetrics metrics,
    TimeProvider time,
    ReplicationTransport transport,
    ILogger<ReplicationService> logger) : BackgroundService, IReplicationQueue
{
    private sealed record Work(string Destination, string? Repository, string? Tag, Digest? Content, int Attempt, DateTimeOffset Since, long Id)
    {
        public bool Reconcile => Repository is null;
    }

    private sealed class Target(string name, ReplicationDestination config, Uri registry, string prefix, IReadOnlyList<RepositoryPattern> patterns)
    {
        public string Name => name;
        public ReplicationDestination Config => config;
        public Uri Registry => registry;
        public string Prefix => prefix;
        public bool Replicates(string repository) => patterns.Count == 0 || patterns.Any(p => p.Matches(repository));
        public string Map(string repository) => prefix.Length == 0 ? repository : $"{prefix}/{repository}";

        // Events not yet replicated (queued, running or waiting for a retry), by id: their age is the lag.
        public ConcurrentDictionary<long, DateTimeOffset> Outstanding { get; } = new();
        public DateTimeOffset? GaveUpSince;
        public DateTimeOffset? LastReconcile;
        public bool? LastReconcileSucceeded;
        public long Failures;
    }

    private readonly Channel<Work> queue = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<ITimer, byte> retries = new();
    private readonly Lazy<IReadOnlyDictionary<string, Target>> targets = new(() => Targets(options.Value));
    private long nextId;
    private Uri? source;

    /// <summary>Raised after each event or reconcile is processed, on the replication worker.</summary>
    public event Action<ReplicationResult>? Processed;

    private ReplicationOptions Options => options.Value;

    public IReadOnlyDictionary<string, ReplicationStatus> Status
    {
        get
        {
            var now = time.GetUtcNow();
            return targets.Value.Values.ToDictionary(t => t.Name, t => new ReplicationStatus(t.LastReconcile, t.LastReconcileSucceeded,
                t.Outstanding.Count, Lag(t, now), Interlocked.Read(ref t.Failures)));
        }
    }

    public void TagChanged(RepositoryName repository, string tag) => Enqueue(repository, tag, null);

    public void ContentPushed(RepositoryName repository, Digest digest) => Enqueue(repository, null, digest);

    private void Enqueue(RepositoryName repository, string? tag, Digest? content)
    {
        if (!Options.IsEnabled || repository.Overlay is not null) return;
        var now = time.GetUtcNow();
        foreach (var target in targets.Value.Values.Where(t => t.Replicates(repository.Value)))
        {
            var work = new Work(target.Name, repository.Value, tag, content, 1, now, Interlocked.Increment(ref nextId));
            target.Outstanding[work.Id] = now;
            queue.Writer.TryWrite(work);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!Options.IsEnabled) return;
        metrics.OnCollect(() =>
        {
            var now = time.GetUtcNow();
            foreach (var target in targets.Value.Values) metrics.ReplicationState(target.Name, target.Outstanding.Count, Lag(target, now).TotalSeconds);
        });
        logger.LogInformation("Replication to {Destinations}; reconcile every {Interval}",
            string.Join(", ", targets.Value.Values.Select(t => $"{t.Name}={t.Config.Url}{(t.Config.Repositories.Count > 0 ? $" [{string.Join(' ', t.Config.Repositories)}]" : "")}{(t.Config.KeepExtra ? " (keep extra)" : "")}")),
            Options.ReconcileInterval);
        using var reconcile = time.CreateTimer(_ =>
        {
            var now = time.GetUtcNow();
            foreach (var target in targets.Value.Values)
                queue.Writer.TryWrite(new Work(target.Name, null, null, null, 1, now, Interlocked.Increment(ref nextId)));
        }, null, Options.ReconcileInterval, Options.ReconcileInterval);
        try
        {
            await foreach (var work in queue.Reader.ReadAllAsync(stoppingToken))
            {
                try
                {
                    await ProcessAsync(work, stoppingToken);
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    // Never let one step stop the worker: a surprise here is logged and the reconcile heals it.
                    logger.LogError(e, "Replication step for {Destination} failed unexpectedly", work.Destination);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var timer in retries.Keys) timer.Dispose();
        }
    }

    private async Task ProcessAsync(Work work, CancellationToken cancellationToken)
    {
        var target = targets.Value[work.Destination];
        var started = time.GetUtcNow();
        int writes = 0, repositoryCount = 0;
        string? error = null;
        var ran = false; // a reconcile that got as far as the repository list
        try
        {
            using var from = SourceClient();
            using var to = new OciRegistryClient(target.Registry, Credentials(target.Config), transport.DestinationHandler(target.Name),
                insecure: target.Config.Insecure, maxAttempts: Math.Max(1, Options.RequestAttempts));
            if (work.Reconcile)
            {
                var failures = new List<string>();
                var repositories = (await from.ListRepositoriesAsync("", cancellationToken)).Where(target.Replicates).ToList();
                (ran, repositoryCount) = (true, repositories.Count);
                foreach (var repository in repositories)
                {
                    try
                    {
                        var report = await SyncerFor(from, to, target, repository, null).SyncAsync(cancellationToken);
                        writes += report.Writes;
                        failures.AddRange(report.Failures);
                        failures.AddRange(report.Checks.Where(c => !c.InSync).SelectMany(c => c.Describe()));
                    }
                    catch (Exception e) when (e is RegistryCallException or HttpRequestException or IOException or ManifestInvalidException or System.Text.Json.JsonException)
                    {
                        failures.Add($"{repository}: {e.Message}");
                    }
                }
                error = failures.Count == 0 ? null : string.Join("; ", failures.Take(10)) + (failures.Count > 10 ? $"; and {failures.Count - 10} more" : "");
            }
            else if (work.Content is { } digest)
            {
                var syncer = SyncerFor(from, to, target, work.Repository!, null);
                await syncer.CopyContentAsync(work.Repository!, target.Map(work.Repository!), digest, cancellationToken);
                writes = to.Writes;
            }
            else
            {
                var report = await SyncerFor(from, to, target, work.Repository!, work.Tag).SyncAsync(cancellationToken);
                writes = report.Writes;
                if (!report.InSync)
                    error = string.Join("; ", report.Failures.Concat(report.Checks.Where(c => !c.InSync).SelectMany(c => c.Describe())));
            }
        }
        catch (Exception e) when (e is RegistryCallException or HttpRequestException or IOException or ManifestInvalidException
                                      or System.Text.Json.JsonException or InvalidOperationException
                                  || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            error = e.Message;
        }

        if (!work.Reconcile) Finish(work, target, error);
        else FinishReconcile(target, started, ran, repositoryCount, writes, error);
        Processed?.Invoke(new ReplicationResult(target.Name, work.Repository, work.Tag, work.Reconcile, error is null, writes, error));
    }

    /// <summary>Status, metrics and a log line for every reconcile, including one that could not run at all.</summary>
    private void FinishReconcile(Target target, DateTimeOffset started, bool ran, int repositories, int writes, string? error)
    {
        target.LastReconcile = started;
        target.LastReconcileSucceeded = error is null;
        // Everything given up on before this reconcile began is now replicated (or reported again here).
        if (error is null) target.GaveUpSince = null;
        else Interlocked.Increment(ref target.Failures);
        metrics.ReplicationReconciled(target.Name, error is null ? "in_sync" : ran ? "differences" : "failed", started.ToUnixTimeSeconds());
        var lag = Lag(target, time.GetUtcNow());
        if (error is null)
            logger.LogInformation("Replication to {Destination}: reconciled {Count} repositories, {Writes} writes, lag {Lag}",
                target.Name, repositories, writes, lag);
        else if (ran)
            logger.LogWarning("Replication to {Destination}: reconcile of {Count} repositories left differences ({Writes} writes, lag {Lag}, {Failures} failures so far): {Error}",
                target.Name, repositories, writes, lag, Interlocked.Read(ref target.Failures), error);
        else
            logger.LogError("Replication to {Destination}: reconcile could not run (lag {Lag}, {Failures} failures so far): {Error}",
                target.Name, lag, Interlocked.Read(ref target.Failures), error);
    }

    private void Finish(Work work, Target target, string? error)
    {
        var what = work.Tag is not null ? $"{work.Repository}:{work.Tag}" : $"{work.Repository}@{work.Content}";
        metrics.ReplicationEvent(target.Name, error is null);
        if (error is null)
        {
            target.Outstanding.TryRemove(work.Id, out _);
            logger.LogInformation("Replicated {What} to {Destination}", what, target.Name);
            return;
        }
        Interlocked.Increment(ref target.Failures);
        if (work.Attempt < Options.MaxAttempts)
        {
            var delay = Options.RetryDelay * Math.Pow(2, work.Attempt - 1);
            logger.LogWarning("Replicating {What} to {Destination} failed (attempt {Attempt} of {MaxAttempts}), retrying in {Delay}: {Error}",
                what, target.Name, work.Attempt, Options.MaxAttempts, delay, error);
            ITimer? timer = null;
            timer = time.CreateTimer(_ =>
            {
                queue.Writer.TryWrite(work with { Attempt = work.Attempt + 1 });
                if (timer is not null && retries.TryRemove(timer, out byte _)) timer.Dispose();
            }, null, delay, Timeout.InfiniteTimeSpan);
            retries[timer] = 0;
            return;
        }
        target.Outstanding.TryRemove(work.Id, out _);
        target.GaveUpSince = target.GaveUpSince is { } since && since < work.Since ? since : work.Since;
        logger.LogError("Replicating {What} to {Destination} failed {Attempts} times; the next reconcile will fix it: {Error}",
            what, target.Name, work.Attempt, error);
    }

    private Syncer SyncerFor(OciRegistryClient from, OciRegistryClient to, Target target, string repository, string? tag) =>
        new(from, new RegistryReference(from.Registry, repository, tag, IsPrefix: false),
            to, new RegistryReference(target.Registry, target.Map(repository), tag, IsPrefix: false),
            new SyncOptions { KeepExtra = target.Config.KeepExtra },
            line => logger.LogDebug("Replication to {Destination}: {Step}", target.Name, line));

    private static TimeSpan Lag(Target target, DateTimeOffset now)
    {
        var oldest = target.Outstanding.Values.Append(target.GaveUpSince ?? DateTimeOffset.MaxValue).Min();
        return oldest == DateTimeOffset.MaxValue || oldest > now ? TimeSpan.Zero : now - oldest;
    }

    private static (string, string)? Credentials(ReplicationDestination destination) =>
        string.IsNullOrEmpty(destination.Username) ? null : (destination.Username, destination.Password ?? "");

    /// <summary>This registry as a source: its own address, with tokens from its own token service when authentication is on.</summary>
    private OciRegistryClient SourceClient()
    {
        source ??= SourceAddress();
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(15),
            // Itself: whatever certificate it serves is its own.
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        };
        var auth = services.GetRequiredService<IOptions<AuthOptions>>().Value;
        HttpMessageHandler chain = auth.IsEnabled ? new LoopbackTokens(services.GetRequiredService<TokenService>(), handler) : handler;
        chain = new LocalTagsOnly(services.GetRequiredService<TagStore>(), chain);
        return new OciRegistryClient(source, null, chain, maxAttempts: Math.Max(1, Options.RequestAttempts));
    }

    private Uri SourceAddress()
    {
        if (!string.IsNullOrEmpty(Options.SourceUrl)) return new Uri(Options.SourceUrl.TrimEnd('/') + "/");
        var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("the registry listens nowhere yet; set Replication:SourceUrl");
        var uri = new UriBuilder(address.Replace("://+", "://0.0.0.0").Replace("://*", "://0.0.0.0"));
        if (uri.Host is "0.0.0.0" or "[::]" or "::") uri.Host = "127.0.0.1";
        uri.Path = "/";
        return uri.Uri;
    }

    private static Dictionary<string, Target> Targets(ReplicationOptions options)
    {
        var result = new Dictionary<string, Target>(StringComparer.Ordinal);
        foreach (var (name, destination) in options.Destinations)
        {
            var (registry, prefix) = destination.Parse() ?? throw new OptionsValidationException(ReplicationOptions.Section, typeof(ReplicationOptions),
                [$"Replication:Destinations:{name}:Url '{destination.Url}' is not http(s)://host[:port][/prefix]"]);
            var patterns = destination.Patterns() ?? throw new OptionsValidationException(ReplicationOptions.Section, typeof(ReplicationOptions),
                [$"Replication:Destinations:{name}:Repositories has an invalid pattern"]);
            result[name] = new Target(name, destination, registry, prefix, patterns);
        }
        return result;
    }

    public override void Dispose()
    {
        queue.Writer.TryComplete();
        foreach (var timer in retries.Keys) timer.Dispose();
        base.Dispose();
    }

    /// <summary>
    /// What is replicated is this registry's own tags, never those a shadowed upstream shows through: tag lists come
    /// from local storage, and a tag that is not local is no tag (so deleting a local tag that shadowed an upstream
    /// one deletes it on the destination too). Content by digest is read over HTTP as any client would, so a local
    /// image built on an upstream base copies whole.
    /// </summary>
    private sealed class LocalTagsOnly(TagStore tags, HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            if (path.StartsWith("/v2/", StringComparison.Ordinal) && (request.Method == HttpMethod.Get || request.Method == HttpMethod.Head))
            {
                if (path.EndsWith("/tags/list", StringComparison.Ordinal) && RepositoryName.TryParse(path[4..^"/tags/list".Length], out var listed))
                    return Json(request, System.Net.HttpStatusCode.OK, new JsonObject
                    {
                        ["name"] = listed.Value,
                        ["tags"] = new JsonArray([.. (await tags.ListAsync(listed, cancellationToken)).Select(tag => (JsonNode)tag)]),
                    });
                var at = path.LastIndexOf("/manifests/", StringComparison.Ordinal);
                if (at > 4 && RepositoryName.TryParse(path[4..at], out var repository) && path[(at + "/manifests/".Length)..] is var reference
                    && Tag.IsValid(reference) && await tags.ResolveAsync(repository, reference, cancellationToken) is null)
                    return Json(request, System.Net.HttpStatusCode.NotFound, new JsonObject
                    {
                        ["errors"] = new JsonArray(new JsonObject { ["code"] = "MANIFEST_UNKNOWN", ["message"] = $"no local tag {reference}" }),
                    });
            }
            return await base.SendAsync(request, cancellationToken);
        }

        // JSON nodes rather than anonymous objects: written without reflection (the Native AOT build has none).
        private static HttpResponseMessage Json(HttpRequestMessage request, System.Net.HttpStatusCode status, JsonNode body) => new(status)
        {
            RequestMessage = request,
            Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
        };
    }

    /// <summary>Adds a short-lived pull token from this registry's own token service to each request the replicator makes of it.</summary>
    private sealed class LoopbackTokens(TokenService tokens, HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            AccessScope? scope = null;
            if (path.StartsWith("/v2/_catalog", StringComparison.Ordinal)) scope = new AccessScope(ResourceTypes.Registry, "catalog", [AccessActions.All]);
            else if (path.StartsWith("/v2/", StringComparison.Ordinal))
            {
                foreach (var marker in new[] { "/manifests/", "/blobs/", "/tags/", "/referrers/" })
                {
                    var at = path.LastIndexOf(marker, StringComparison.Ordinal);
                    if (at > 4)
                    {
                        scope = new AccessScope(ResourceTypes.Repository, path[4..at], [AccessActions.Pull]);
                        break;
                    }
                }
            }
            if (scope is not null && request.Headers.Authorization is null)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tokens.Issue("replication", [scope]).Token);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
