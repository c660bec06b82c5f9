using System.Globalization;
using System.Text.RegularExpressions;

namespace ShadowRegistry.Cli;

/// <summary>A command-line mistake: the command prints the message and its usage, and exits with code 2.</summary>
public sealed class ChangesUsageException(string message) : Exception(message);

/// <summary>The parsed arguments of <c>ShadowRegistry changes &lt;verb&gt; ...</c> (see <see cref="ChangesCommand.Usage"/>).</summary>
public sealed partial class ChangesOptions
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public string Verb { get; private init; } = "";

    public bool Help { get; private set; }

    public Uri? BaseUrl { get; private set; }

    public string? Id { get; private set; }

    public string? Username { get; private set; }

    public bool PasswordStdin { get; private set; }

    public string? Token { get; private set; }

    public string? CaCertPath { get; private set; }

    public bool Insecure { get; private set; }

    public TimeSpan Timeout { get; private set; } = DefaultTimeout;

    public bool Json { get; private set; }

    public bool IfExists { get; private set; }

    /// <summary>Null when no <c>--ahead</c> was given, so the field is left out of the request.</summary>
    public List<string>? Ahead { get; private set; }

    public string? Ttl { get; private set; }

    /// <summary>In command-line order; <c>list</c> may repeat a key (all must match), <c>create</c> may not.</summary>
    public List<KeyValuePair<string, string>> Labels { get; } = [];

    public List<(string Repository, string Tag)> Tags { get; } = [];

    /// <summary>Key <c>repository:tag</c>; a null digest means "the base must not have this tag".</summary>
    public List<KeyValuePair<string, string?>> Expect { get; } = [];

    private static readonly string[] Verbs = ["create", "list", "show", "delete", "promote"];

    // Which options each verb takes; anything else is a usage error rather than silently ignored.
    private static readonly Dictionary<string, string[]> VerbOptions = new()
    {
        ["create"] = ["--ahead", "--ttl", "--label"],
        ["list"] = ["--label", "--json"],
        ["show"] = [],
        ["delete"] = ["--if-exists"],
        ["promote"] = ["--tag", "--expect"],
    };

    private static readonly HashSet<string> Flags = ["--password-stdin", "--insecure", "--json", "--if-exists", "-h", "--help"];

    private static readonly HashSet<string> Valued =
        ["--url", "--username", "--token", "--ca-cert", "--timeout", "--ahead", "--ttl", "--label", "--tag", "--expect"];

    /// <summary>Parses <paramref name="args"/> (after <c>changes</c>); throws <see cref="ChangesUsageException"/>.</summary>
    public static ChangesOptions Parse(string[] args, Func<string, string?> environment)
    {
        if (args.Length == 0) throw new ChangesUsageException("missing verb");
        if (args[0] is "-h" or "--help" or "help") return new ChangesOptions { Verb = "", Help = true };
        if (!Verbs.Contains(args[0])) throw new ChangesUsageException($"unknown verb '{args[0]}'");

        var options = new ChangesOptions { Verb = args[0] };
        string? url = null;
        for (var i = 1; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith('-'))
            {
                if (options.Id is not null) throw new ChangesUsageException($"unexpected argument '{arg}'");
                options.Id = arg;
                continue;
            }

            // "--name=value" and "--name value" are both accepted.
            string name = arg, value = "";
            var equals = arg.IndexOf('=');
            var inline = arg.StartsWith("--") && equals > 2;
            if (inline)
            {
                name = arg[..equals];
                value = arg[(equals + 1)..];
            }
            if (!Flags.Contains(name) && !Valued.Contains(name)) throw new ChangesUsageException($"unknown option '{name}'");
            if (Flags.Contains(name))
            {
                if (inline) throw new ChangesUsageException($"{name} takes no value");
            }
            else if (!inline)
            {
                if (i + 1 >= args.Length) throw new ChangesUsageException($"{name} needs a value");
                value = args[++i];
            }

            if (name is "--ahead" or "--ttl" or "--label" or "--json" or "--if-exists" or "--tag" or "--expect"
                && !VerbOptions[options.Verb].Contains(name))
            {
                throw new ChangesUsageException($"'{options.Verb}' does not take {name}");
            }

            switch (name)
            {
                case "-h" or "--help": options.Help = true; break;
                case "--url": url = value; break;
                case "--username": options.Username = value; break;
                case "--password-stdin": options.PasswordStdin = true; break;
                case "--token": options.Token = value; break;
                case "--ca-cert": options.CaCertPath = value; break;
                case "--insecure": options.Insecure = true; break;
                case "--timeout": options.Timeout = ParseTimeout(value); break;
                case "--json": options.Json = true; break;
                case "--if-exists": options.IfExists = true; break;
                case "--ttl": options.Ttl = value; break;
                case "--ahead":
                    // "--ahead ''" sends an empty list: how a change at the head of the queue is re-parented.
                    options.Ahead ??= [];
                    options.Ahead.AddRange(value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                    break;
                case "--label": options.Labels.Add(ParseLabel(value, options.Verb == "create" ? options.Labels : null)); break;
                case "--tag": options.Tags.Add(ParseRepositoryTag(value, "--tag")); break;
                case "--expect": options.Expect.Add(ParseExpect(value, options.Expect)); break;
                default: throw new ChangesUsageException($"unknown option '{name}'");
            }
        }
        if (options.Help) return options;

        url ??= environment("SHADOWREGISTRY_URL");
        if (string.IsNullOrWhiteSpace(url)) throw new ChangesUsageException("no registry URL: give --url or set SHADOWREGISTRY_URL");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https")
            || !string.IsNullOrEmpty(parsed.Query) || !string.IsNullOrEmpty(parsed.Fragment))
        {
            throw new ChangesUsageException($"--url '{url}' is not an http(s) URL");
        }
        // A trailing slash makes "api/v1/changes" resolve below a registry served under a path prefix.
        options.BaseUrl = parsed.AbsolutePath.EndsWith('/') ? parsed : new Uri(parsed + "/");

        if (options.Verb == "list")
        {
            if (options.Id is not null) throw new ChangesUsageException($"unexpected argument '{options.Id}'");
        }
        else if (options.Id is null)
        {
            throw new ChangesUsageException($"'{options.Verb}' needs a change id");
        }
        else if (!IsChangeId(options.Id))
        {
            // The id becomes a URL path segment: refusing it here keeps e.g. ".." from resolving to another URL.
            throw new ChangesUsageException($"'{options.Id}' is not a change id ([a-z0-9]+([._-][a-z0-9]+)*, at most 64 characters)");
        }

        if (options.PasswordStdin && options.Username is null) throw new ChangesUsageException("--password-stdin needs --username");
        if (options.Username is not null && options.Token is not null) throw new ChangesUsageException("give --username or --token, not both");
        if (options.Username is null && options.Token is null)
        {
            // Command-line credentials win over the environment's; a token wins over a user name there.
            options.Token = NullIfEmpty(environment("SHADOWREGISTRY_TOKEN"));
            if (options.Token is null) options.Username = NullIfEmpty(environment("SHADOWREGISTRY_USERNAME"));
        }
        if (options.Insecure && options.CaCertPath is not null) throw new ChangesUsageException("give --ca-cert or --insecure, not both");
        return options;
    }

    public static bool IsChangeId(string id) => id.Length <= 64 && ChangeIdPattern().IsMatch(id);

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    /// <summary>Seconds, or a number with the suffix s, m or h (e.g. 30, 30s, 2m).</summary>
    private static TimeSpan ParseTimeout(string value)
    {
        var (number, unit) = value.Length > 0 && char.IsLetter(value[^1]) ? (value[..^1], value[^1]) : (value, 's');
        if (double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount) && amount > 0)
        {
            var timeout = unit switch
            {
                's' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMinutes(amount),
                'h' => TimeSpan.FromHours(amount),
                _ => TimeSpan.Zero,
            };
            if (timeout > TimeSpan.Zero && timeout <= TimeSpan.FromDays(1)) return timeout;
        }
        throw new ChangesUsageException($"--timeout '{value}' is not a duration like 30, 30s or 2m");
    }

    private static KeyValuePair<string, string> ParseLabel(string value, List<KeyValuePair<string, string>>? unique)
    {
        var equals = value.IndexOf('=');
        if (equals <= 0) throw new ChangesUsageException($"--label '{value}' is not key=value");
        var label = KeyValuePair.Create(value[..equals], value[(equals + 1)..]);
        if (unique is not null && unique.Any(l => l.Key == label.Key)) throw new ChangesUsageException($"--label '{label.Key}' given twice");
        return label;
    }

    /// <summary>
    /// <c>repository:tag</c>, split on the last ':': tags hold no ':', so whatever a name before it holds (slashes,
    /// or a host:port prefix someone copied from an image reference) stays in the repository.
    /// </summary>
    private static (string Repository, string Tag) ParseRepositoryTag(string value, string option)
    {
        var colon = value.LastIndexOf(':');
        if (colon <= 0 || colon == value.Length - 1 || value[(colon + 1)..].Contains('/'))
        {
            throw new ChangesUsageException($"{option} '{value}' is not repository:tag");
        }
        return (value[..colon], value[(colon + 1)..]);
    }

    /// <summary>
    /// <c>repository:tag=digest</c> or <c>repository:tag=none</c>. Split on the first '=': repository names and tags
    /// hold none, while a digest's encoded part may (the OCI digest grammar allows '=').
    /// </summary>
    private static KeyValuePair<string, string?> ParseExpect(string value, List<KeyValuePair<string, string?>> seen)
    {
        var equals = value.IndexOf('=');
        if (equals <= 0 || equals == value.Length - 1) throw new ChangesUsageException($"--expect '{value}' is not repository:tag=digest or repository:tag=none");
        var (repository, tag) = ParseRepositoryTag(value[..equals], "--expect");
        var key = $"{repository}:{tag}";
        if (seen.Any(e => e.Key == key)) throw new ChangesUsageException($"--expect '{key}' given twice");
        var digest = value[(equals + 1)..];
        return KeyValuePair.Create(key, digest == "none" ? null : digest);
    }

    [GeneratedRegex("^[a-z0-9]+([._-][a-z0-9]+)*$")]
    private static partial Regex ChangeIdPattern();
}
