using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ShadowRegistry.Cli;

/// <summary>
/// <c>ShadowRegistry changes create|list|show|delete|promote</c>: a client of the speculative-changes management API
/// (docs/changes-api.md) for CI scripts, against a registry URL. Exit codes: 0 success, 1 server error or
/// unreachable, 2 usage error, 3 promotion conflict (409 CHANGE_CONFLICT), 4 not found, 130 interrupted.
/// </summary>
public static class ChangesCommand
{
    public const int Success = 0, Failed = 1, UsageError = 2, Conflict = 3, NotFound = 4, Interrupted = 130;

    public const string Usage = """
        Usage: ShadowRegistry changes <verb> [--url <registry url>] [auth] [options]

          create <id> [--ahead a,b]... [--ttl 24h] [--label k=v]...
                                     create or update a change (ahead: nearest first; --ahead '' sends an empty
                                     list); prints its description
          list [--label k=v]... [--json]
                                     changes whose labels all match: a table of id, expiry, ahead, labels
          show <id>                  the change's description, with the tags it holds
          delete <id> [--if-exists]  delete the change (--if-exists: a missing change is not an error)
          promote <id> [--tag repo:tag]... [--expect repo:tag=sha256:...|repo:tag=none]...
                                     write the change's tags (or only the given ones) into the base namespace, if
                                     every --expect matches the base's current digest (none: the tag must not exist)

        Options:
          --url <url>                the registry, e.g. https://registry.example.org (env SHADOWREGISTRY_URL)
          --username <user>          HTTP Basic user (env SHADOWREGISTRY_USERNAME); the password comes from
          --password-stdin             the first line of standard input, or env SHADOWREGISTRY_PASSWORD
          --token <token>            Bearer token (env SHADOWREGISTRY_TOKEN)
          --ca-cert <pem file>       trust this CA too when verifying the registry's TLS certificate
          --insecure                 do not verify the TLS certificate at all
          --timeout <duration>       bound on each call: seconds, or 30s, 2m (default 30s)
          -h, --help                 this text

        Exit codes: 0 success, 1 server error or unreachable, 2 usage error, 3 promotion conflict (an --expect did
        not match; nothing changed), 4 no such change, 130 interrupted.
        """;

    // Relaxed escaping keeps labels with '+', '<' or non-ASCII text readable: the output is for terminals and jq, not HTML.
    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Runs against the real console; Ctrl+C cancels the call in flight.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        using var interrupt = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            // Let the command unwind and report instead of the runtime killing the process mid-write.
            e.Cancel = true;
            interrupt.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            return await RunAsync(args, Console.In, Console.Out, Console.Error, Environment.GetEnvironmentVariable, interrupt.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <param name="args">The arguments after <c>changes</c>.</param>
    /// <param name="input">Standard input, read only for <c>--password-stdin</c>.</param>
    /// <param name="environment">Environment lookup (SHADOWREGISTRY_URL and the credentials).</param>
    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error,
        Func<string, string?> environment, CancellationToken cancellationToken)
    {
        ChangesOptions options;
        X509Certificate2Collection? extraCa = null;
        string? password = null;
        try
        {
            options = ChangesOptions.Parse(args, environment);
            if (options.Help)
            {
                output.WriteLine(Usage);
                return Success;
            }
            if (options.CaCertPath is not null) extraCa = ChangesHttp.LoadCa(options.CaCertPath);
            if (options.Username is not null)
            {
                password = options.PasswordStdin ? input.ReadLine() : environment("SHADOWREGISTRY_PASSWORD");
                if (string.IsNullOrEmpty(password))
                {
                    throw new ChangesUsageException(options.PasswordStdin
                        ? "--password-stdin: no password on standard input"
                        : "--username needs a password: --password-stdin or SHADOWREGISTRY_PASSWORD");
                }
            }
        }
        catch (ChangesUsageException e)
        {
            error.WriteLine($"error: {e.Message}\n\n{Usage}");
            return UsageError;
        }

        if (options.Insecure) error.WriteLine("warning: --insecure: the registry's TLS certificate is not verified");
        using var client = ChangesHttp.CreateClient(options, extraCa, password);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Timeout);
        try
        {
            return options.Verb switch
            {
                "create" => await CreateAsync(client, options, output, error, timeout.Token),
                "list" => await ListAsync(client, options, output, error, timeout.Token),
                "show" => await ShowAsync(client, options, output, error, timeout.Token),
                "delete" => await DeleteAsync(client, options, output, error, timeout.Token),
                _ => await PromoteAsync(client, options, output, error, timeout.Token),
            };
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            error.WriteLine("error: interrupted");
            return Interrupted;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine($"error: no answer from {options.BaseUrl} within {options.Timeout.TotalSeconds:0.#}s (--timeout)");
            return Failed;
        }
        catch (HttpRequestException e)
        {
            // The innermost message names the cause (refused, name not resolved, certificate rejected) without a trace.
            var cause = e.InnerException?.GetBaseException().Message ?? e.Message;
            error.WriteLine($"error: cannot reach {options.BaseUrl}: {e.Message}{(e.Message.Contains(cause) ? "" : $" ({cause})")}");
            return Failed;
        }
    }

    private static async Task<int> CreateAsync(HttpClient client, ChangesOptions options, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        // Only the fields given: the contract makes each optional, and an absent one keeps the server's default.
        var body = new JsonObject();
        if (options.Ahead is not null) body["ahead"] = new JsonArray([.. options.Ahead.Select(id => (JsonNode)id)]);
        if (options.Ttl is not null) body["ttl"] = options.Ttl;
        if (options.Labels.Count > 0) body["labels"] = new JsonObject(options.Labels.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value)));
        using var request = new HttpRequestMessage(HttpMethod.Put, ChangeUri(options)) { Content = Json(body) };
        var (status, text) = await SendAsync(client, request, cancellationToken);
        if (!IsSuccess(status)) return Fail(status, text, error);
        output.WriteLine(Indent(text));
        return Success;
    }

    private static async Task<int> ListAsync(HttpClient client, ChangesOptions options, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var query = string.Join('&', options.Labels.Select(l => "label=" + Uri.EscapeDataString($"{l.Key}={l.Value}")));
        var uri = new Uri(options.BaseUrl!, "api/v1/changes" + (query.Length > 0 ? "?" + query : ""));
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        var (status, text) = await SendAsync(client, request, cancellationToken);
        if (!IsSuccess(status)) return Fail(status, text, error);
        if (options.Json)
        {
            output.WriteLine(text);
            return Success;
        }
        JsonArray changes;
        try
        {
            changes = JsonNode.Parse(text)?["changes"] as JsonArray ?? throw new JsonException("no \"changes\" array");
        }
        catch (JsonException e)
        {
            error.WriteLine($"error: the registry's answer is not a change list: {e.Message}");
            return Failed;
        }
        WriteTable(output, changes.OfType<JsonObject>().Select(change => new[]
        {
            ChangesHttp.Text(change["id"]) ?? "?",
            ChangesHttp.Text(change["expiresAt"]) ?? "-",
            Joined((change["ahead"] as JsonArray)?.Select(ChangesHttp.Text).OfType<string>()),
            Joined((change["labels"] as JsonObject)?.Select(l => $"{l.Key}={ChangesHttp.Text(l.Value)}")),
        }));
        return Success;
    }

    private static async Task<int> ShowAsync(HttpClient client, ChangesOptions options, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, ChangeUri(options));
        var (status, text) = await SendAsync(client, request, cancellationToken);
        if (!IsSuccess(status)) return Fail(status, text, error);
        output.WriteLine(Indent(text));
        return Success;
    }

    private static async Task<int> DeleteAsync(HttpClient client, ChangesOptions options, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, ChangeUri(options));
        var (status, text) = await SendAsync(client, request, cancellationToken);
        if (status == HttpStatusCode.NotFound && options.IfExists)
        {
            error.WriteLine($"change {options.Id} does not exist");
            return Success;
        }
        if (!IsSuccess(status)) return Fail(status, text, error);
        output.WriteLine($"deleted {options.Id}");
        return Success;
    }

    private static async Task<int> PromoteAsync(HttpClient client, ChangesOptions options, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, ChangeUri(options, "/promote"));
        // No body at all when nothing narrows the promotion: the contract makes it optional.
        if (options.Tags.Count > 0 || options.Expect.Count > 0)
        {
            var body = new JsonObject();
            if (options.Tags.Count > 0)
            {
                body["tags"] = new JsonArray([.. options.Tags.Select(t => (JsonNode)new JsonObject { ["repository"] = t.Repository, ["tag"] = t.Tag })]);
            }
            if (options.Expect.Count > 0)
            {
                body["expect"] = new JsonObject(options.Expect.Select(e => KeyValuePair.Create(e.Key, e.Value is null ? null : (JsonNode?)e.Value)));
            }
            request.Content = Json(body);
        }
        var (status, text) = await SendAsync(client, request, cancellationToken);
        if (!IsSuccess(status)) return Fail(status, text, error);
        output.WriteLine(Indent(text));
        return Success;
    }

    private static Uri ChangeUri(ChangesOptions options, string suffix = "") =>
        new(options.BaseUrl!, $"api/v1/changes/{Uri.EscapeDataString(options.Id!)}{suffix}");

    private static StringContent Json(JsonObject body) =>
        new(body.ToJsonString(), new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" });

    private static async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpClient client, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
    }

    private static bool IsSuccess(HttpStatusCode status) => (int)status is >= 200 and < 300;

    /// <summary>Prints the OCI error(s) of an answer that is not a success and picks the exit code.</summary>
    private static int Fail(HttpStatusCode status, string body, TextWriter error)
    {
        var errors = ChangesHttp.ReadErrors(body);
        if (errors.Count == 0)
        {
            error.WriteLine($"error: HTTP {(int)status} {status}{(IsRedirect(status) ? " (the registry redirects: check --url)" : "")}");
        }
        foreach (var (code, message, detail) in errors)
        {
            error.WriteLine($"error: {code}: {message}");
            if (code != "CHANGE_CONFLICT" || detail?["mismatches"] is not JsonArray mismatches) continue;
            foreach (var mismatch in mismatches.OfType<JsonObject>())
            {
                error.WriteLine($"  {ChangesHttp.Text(mismatch["repository"])}:{ChangesHttp.Text(mismatch["tag"])}: " +
                    $"expected {ChangesHttp.Text(mismatch["expected"]) ?? "none"}, actual {ChangesHttp.Text(mismatch["actual"]) ?? "none"}");
            }
        }
        if (status == HttpStatusCode.NotFound) return NotFound;
        if (status == HttpStatusCode.Conflict && errors.Any(e => e.Code == "CHANGE_CONFLICT")) return Conflict;
        return Failed;
    }

    private static bool IsRedirect(HttpStatusCode status) => (int)status is >= 300 and < 400;

    /// <summary>The body indented; left as it came when it is not JSON, so nothing the server said is lost.</summary>
    private static string Indent(string body)
    {
        try
        {
            return JsonNode.Parse(body)?.ToJsonString(Pretty) ?? body;
        }
        catch (JsonException)
        {
            return body;
        }
    }

    private static string Joined(IEnumerable<string>? values)
    {
        var text = values is null ? "" : string.Join(',', values);
        return text.Length == 0 ? "-" : text;
    }

    private static void WriteTable(TextWriter output, IEnumerable<string[]> rows)
    {
        string[][] all = [["ID", "EXPIRES", "AHEAD", "LABELS"], .. rows];
        var widths = Enumerable.Range(0, 4).Select(column => all.Max(row => row[column].Length)).ToArray();
        var line = new StringBuilder();
        foreach (var row in all)
        {
            line.Clear();
            for (var column = 0; column < row.Length; column++)
            {
                line.Append(column < row.Length - 1 ? row[column].PadRight(widths[column] + 2) : row[column]);
            }
            output.WriteLine(line.ToString());
        }
    }
}
