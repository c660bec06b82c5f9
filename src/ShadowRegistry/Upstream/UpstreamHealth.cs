using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using System.Web;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using ShadowRegistry.Observability;

namespace ShadowRegistry.Upstream;

/// <summary>What one upstream attempt says about the health of the upstream's host.</summary>
public enum AttemptOutcome
{
    /// <summary>The host answered: anything but a 5xx or 408, so 401, 403, 404 and 429 too.</summary>
    Answered,

    /// <summary>The host could not be reached at all (refused, unreachable, DNS, TLS, connect timeout): the same for any repository.</summary>
    Unreachable,

    /// <summary>A 5xx or 408, an attempt timeout or a dropped response: either the host or only this repository is broken.</summary>
    Failed,

    /// <summary>Says nothing about the host, e.g. our own caller went away.</summary>
    Ignored,
}

/// <summary>
/// One circuit breaker per upstream that knows which repository each failure came from, which Polly's breaker
/// cannot see. A broken repository (answering 500, timing out, dropping the connection) must not make every
/// other repository of its upstream answer 503; a broken host must still fail fast.
/// <para>
/// The rule: the circuit opens once the failures since the last answer, and not older than
/// <see cref="ShadowOptions.BreakDuration"/>, hold <see cref="ShadowOptions.BreakAfterFailures"/> host-level
/// ones. A connection failure is host-level by nature. A 5xx, timeout or dropped response is host-level only
/// when the failures come from at least <see cref="ShadowOptions.BreakAfterRepositories"/> distinct
/// repositories: one repository failing alone is that repository's problem. Any answer (a 404 included) proves
/// the host is up and clears the count. After <see cref="ShadowOptions.BreakDuration"/> one probe request goes
/// through: an answer closes the circuit, a failure opens it again.
/// </para>
/// </summary>
public sealed partial class UpstreamHealth
{
    private readonly ConcurrentDictionary<string, HostHealth> hosts = new();
    private readonly IOptions<ShadowOptions> options;
    private readonly TimeProvider time;
    private readonly RegistryMetrics metrics;
    private readonly ILogger<UpstreamHealth> logger;

    public UpstreamHealth(IOptions<ShadowOptions> options, TimeProvider time, RegistryMetrics metrics, ILogger<UpstreamHealth> logger)
    {
        this.options = options;
        this.time = time;
        this.metrics = metrics;
        this.logger = logger;
        // Every configured upstream shows a closed circuit from the start, not only once it has been used.
        foreach (var name in options.Value.Upstreams.Keys) metrics.UpstreamCircuit(name, open: false);
    }

    /// <summary>The health of the host a request goes to: the configured upstream, or for a token realm its authority.</summary>
    public HostHealth For(HttpRequestMessage request)
    {
        var key = request.Options.TryGetValue(UpstreamRequestOptions.Registry, out var upstream)
            ? $"upstream {upstream.Name}"
            : $"host {request.RequestUri?.Authority}";
        return hosts.GetOrAdd(key, k => new HostHealth(k, MetricsLabel(request), options.Value, time, metrics, logger));
    }

    /// <summary>
    /// What metrics call the host a request goes to: the configured upstream's name, or a token realm's authority
    /// (one per upstream at most, so the label stays small).
    /// </summary>
    public static string MetricsLabel(HttpRequestMessage request) =>
        request.Options.TryGetValue(UpstreamRequestOptions.Registry, out var upstream) ? upstream.Name : request.RequestUri?.Authority ?? "";

    /// <summary>
    /// The repository a request is about, from its pull scope (set on every registry request and named by token
    /// requests), else from its /v2/&lt;name&gt;/ path, else the path itself.
    /// </summary>
    public static string RepositoryOf(HttpRequestMessage request)
    {
        var scope = request.Options.TryGetValue(UpstreamRequestOptions.Scope, out var tagged) ? tagged
            : request.RequestUri is { IsAbsoluteUri: true } uri ? HttpUtility.ParseQueryString(uri.Query)["scope"] : null;
        if (scope is not null && scope.Split(':') is ["repository", var name, ..] && name.Length > 0) return name;
        var path = request.RequestUri?.IsAbsoluteUri == true ? request.RequestUri.AbsolutePath : request.RequestUri?.OriginalString ?? "";
        var match = RegistryPath().Match(path);
        return match.Success ? match.Groups["name"].Value : path;
    }

    [GeneratedRegex("^/v2/(?<name>.+)/(?:manifests|blobs|tags|referrers)/[^/]+\\z", RegexOptions.CultureInvariant)]
    private static partial Regex RegistryPath();
}

/// <summary>The circuit of one upstream host; see <see cref="UpstreamHealth"/> for the rule.</summary>
/// <param name="label">The host's name in metrics (<see cref="UpstreamHealth.MetricsLabel"/>).</param>
public sealed class HostHealth(string name, string label, ShadowOptions settings, TimeProvider time, RegistryMetrics metrics, ILogger logger)
{
    private readonly record struct Failure(DateTimeOffset At, string Repository, bool Unreachable);

    private readonly Lock gate = new();

    /// <summary>Failures since the last answer, oldest first.</summary>
    private readonly List<Failure> failures = [];

    private DateTimeOffset? openUntil;
    private bool probing;

    public bool IsOpen
    {
        get { lock (gate) return openUntil is not null; }
    }

    /// <summary>
    /// Admits a request, or throws <see cref="BrokenCircuitException"/> (which callers answer with 503) while the
    /// circuit is open. Returns true when the request is the probe of a circuit whose break has ended.
    /// </summary>
    public bool Enter()
    {
        lock (gate)
        {
            if (openUntil is not { } until) return false;
            if (time.GetUtcNow() < until || probing)
                throw new BrokenCircuitException($"circuit open for upstream {name} after repeated host-level failures");
            probing = true;
            return true;
        }
    }

    public void Record(AttemptOutcome outcome, string repository, bool probe)
    {
        lock (gate)
        {
            var now = time.GetUtcNow();
            if (probe)
            {
                probing = false;
                if (outcome == AttemptOutcome.Answered)
                {
                    openUntil = null;
                    failures.Clear();
                    metrics.UpstreamCircuit(label, open: false);
                    logger.LogInformation("Upstream {Upstream} circuit closed: {Repository} answered", name, repository);
                }
                else if (outcome != AttemptOutcome.Ignored)
                {
                    Open(now);
                    logger.LogWarning("Upstream {Upstream} circuit opened again for {Duration}: probe of {Repository} failed ({Outcome})",
                        name, settings.BreakDuration, repository, outcome);
                }
                return;
            }
            // Requests admitted before the circuit opened tell nothing the probe will not.
            if (openUntil is not null || outcome == AttemptOutcome.Ignored) return;
            if (outcome == AttemptOutcome.Answered)
            {
                failures.Clear();
                return;
            }

            failures.RemoveAll(f => now - f.At >= settings.BreakDuration);
            // Keeping more 5xx/timeouts of one repository than the threshold cannot change the decision; it bounds memory.
            if (outcome == AttemptOutcome.Failed && failures.Count(f => !f.Unreachable && f.Repository == repository) >= settings.BreakAfterFailures)
                failures.RemoveAt(failures.FindIndex(f => !f.Unreachable && f.Repository == repository));
            failures.Add(new Failure(now, repository, outcome == AttemptOutcome.Unreachable));

            var unreachable = failures.Count(f => f.Unreachable);
            var repositories = failures.Select(f => f.Repository).Distinct(StringComparer.Ordinal).Count();
            var hostLevel = unreachable + (repositories >= settings.BreakAfterRepositories ? failures.Count - unreachable : 0);
            if (hostLevel < settings.BreakAfterFailures) return;
            Open(now);
            logger.LogError("Upstream {Upstream} circuit opened for {Duration} after {Failures} host-level failures ({Unreachable} unreachable) across {Repositories} repositories",
                name, settings.BreakDuration, hostLevel, unreachable, repositories);
        }
    }

    private void Open(DateTimeOffset now)
    {
        openUntil = now + settings.BreakDuration;
        failures.Clear();
        metrics.UpstreamCircuit(label, open: true);
    }
}
