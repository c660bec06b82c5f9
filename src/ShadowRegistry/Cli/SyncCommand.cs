using System.Text.Json;
using System.Text.RegularExpressions;
using Semver;
using ShadowRegistry.Sync;

namespace ShadowRegistry.Cli;

/// <summary>
/// <c>sync &lt;source&gt; &lt;destination&gt;</c> and <c>check &lt;source&gt; &lt;destination&gt;</c>: one plan over both sides' exact
/// (tag, digest) state; the sync ends with the check, and fails unless the check says in sync.
/// </summary>
public static class SyncCommand
{
    public const int InSync = 0;
    public const int NotInSync = 1;
    public const int Error = 2;

    public const string Usage = """
        Usage: ShadowRegistry sync  <source> <destination> [options]
               ShadowRegistry check <source> <destination> [options]

        A reference is [http://|https://]host[:port]/<repository>[:<tag>] (no scheme means https), or
        [http(s)://]host[:port]/<prefix>/* for every repository under a prefix (from the source's _catalog).
        A tag on either side limits both sides to that tag.

        sync makes the destination's tags equal the source's: missing tags are copied, tags with another digest are
        re-pushed, tags only on the destination are deleted (unless --keep-extra); content is copied by digest,
        blobs first and the tag last. It ends by running check. check compares a SHA-256 of each side's sorted
        tag/digest pairs and names every missing, mutated or extra tag.
        Exit codes: 0 in sync, 1 not in sync (or some tags failed), 2 error.

        Options:
          --dry-run                print the plan, change nothing (sync)
          --keep-extra             leave tags that only the destination has (publishing into a shared repository)
          --tag-regex <regex>      only tags matching it, on both sides
          --semver <range>         only tags that are versions in this npm-style range, e.g. ">=1.2 <2" or "^1.4"
                                   (v1.2.3, 1.2 and 1 read as versions; other tags are left out; with --tag-regex
                                   a tag must match both)
          --dest-prefix <prefix>   put before each destination repository name
          --strip-prefix <prefix>  take off the front of each source repository name
          --src-creds <user:pass>  source credentials (else SHADOWREGISTRY_SRC_CREDS, else what docker/podman login
                                   stored: auth files and the credential helpers they name)
          --dest-creds <user:pass> destination credentials (else SHADOWREGISTRY_DEST_CREDS, else as for the source)
          --insecure               do not verify TLS certificates
          --rate <requests/s>      limit requests per second to each registry
          --attempts <n>           attempts per request (retries 429, 5xx and dropped connections; default 5)
        """;

    /// <param name="terminal">Standard error is a terminal: progress is a status line redrawn in place, not log lines.</param>
    public static async Task<int> RunAsync(string[] args, bool sync, TextWriter output, TextWriter errors, Func<string, string?> environment,
        CancellationToken cancellationToken, bool terminal = false)
    {
        var positional = new List<string>();
        var options = new SyncOptions();
        string? sourceCredentials = null, destinationCredentials = null;
        var insecure = false;
        double? rate = null;
        var attempts = 5;
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "-h" or "--help":
                        output.WriteLine(Usage);
                        return InSync;
                    case "--dry-run": options = options with { DryRun = true }; break;
                    case "--keep-extra": options = options with { KeepExtra = true }; break;
                    case "--tag-regex": options = options with { TagFilter = new Regex(Value(), RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)) }; break;
                    case "--semver": options = options with { VersionRange = SemVersionRange.ParseNpm(Value()) }; break;
                    case "--dest-prefix": options = options with { DestinationPrefix = Value() }; break;
                    case "--strip-prefix": options = options with { StripPrefix = Value() }; break;
                    case "--src-creds": sourceCredentials = Value(); break;
                    case "--dest-creds": destinationCredentials = Value(); break;
                    case "--insecure": insecure = true; break;
                    case "--rate": rate = double.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--attempts": attempts = Math.Max(1, int.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture)); break;
                    default:
                        if (args[i].StartsWith('-')) throw new ArgumentException($"unknown option {args[i]}");
                        positional.Add(args[i]);
                        break;
                }
            }
            if (positional.Count != 2) throw new ArgumentException("give a source and a destination");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            errors.WriteLine($"{e.Message}\n\n{Usage}");
            return Error;
        }

        try
        {
            var from = RegistryReference.Parse(positional[0]);
            var to = RegistryReference.Parse(positional[1]);
            if (to.IsPrefix != from.IsPrefix && !to.IsPrefix) throw new ArgumentException("a prefix source needs a prefix destination (host/<prefix>/*)");
            if (from.Tag is not null && to.Tag is not null && from.Tag != to.Tag)
                throw new ArgumentException("tags are synced under their own names: give the destination the source's tag, or none");
            var sourceLogin = await CredentialsAsync(sourceCredentials ?? environment("SHADOWREGISTRY_SRC_CREDS"), from, environment, cancellationToken);
            var destinationLogin = await CredentialsAsync(destinationCredentials ?? environment("SHADOWREGISTRY_DEST_CREDS"), to, environment, cancellationToken);
            using var source = new OciRegistryClient(from.Registry, sourceLogin,
                insecure: insecure, maxAttempts: attempts, requestsPerSecond: rate);
            using var destination = new OciRegistryClient(to.Registry, destinationLogin,
                insecure: insecure, maxAttempts: attempts, requestsPerSecond: rate);
            var progress = new SyncProgress(TimeProvider.System);
            using var display = new SyncProgressDisplay(progress, output, errors, terminal && sync && !options.DryRun, TimeProvider.System);
            var syncer = new Syncer(source, from, destination, to, options, display.Log, sync && !options.DryRun ? progress : null);
            var report = sync ? await syncer.SyncAsync(cancellationToken) : await syncer.CheckAsync(cancellationToken);
            if (sync && !options.DryRun) display.Finish();
            foreach (var failure in report.Failures) errors.WriteLine($"failed: {failure}");
            foreach (var check in report.Checks)
            {
                output.WriteLine($"{(check.InSync ? "in sync" : "NOT in sync")}: {check.Repository} source {check.SourceFingerprint} destination {check.DestinationFingerprint}");
                foreach (var line in check.Describe()) output.WriteLine($"  {line}");
            }
            if (sync && !options.DryRun) output.WriteLine($"{report.Writes} write(s) to the destination");
            if (options.DryRun) return InSync;
            return report.InSync ? InSync : NotInSync;
        }
        catch (Exception e) when (e is ArgumentException or RegistryCallException or HttpRequestException or IOException or JsonException
                                      or Domain.ManifestInvalidException or TaskCanceledException)
        {
            errors.WriteLine($"error: {e.Message}");
            return Error;
        }
    }

    /// <summary>"user:pass" given, else what the container tools stored for the registry (auth files, credential helpers), else none.</summary>
    private static async Task<(string User, string Password)?> CredentialsAsync(string? given, RegistryReference reference,
        Func<string, string?> environment, CancellationToken cancellationToken)
    {
        if (!string.IsNullOrEmpty(given))
        {
            var colon = given.IndexOf(':');
            if (colon <= 0) throw new ArgumentException("credentials must be user:password");
            return (given[..colon], given[(colon + 1)..]);
        }
        return await StoredCredentials.FindAsync(reference.Registry, reference.Repository, environment, cancellationToken);
    }
}
