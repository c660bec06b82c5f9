using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace ShadowRegistry.Sync;

/// <summary>
/// The credentials the container tools stored for a registry: the auth files <c>podman login</c> and
/// <c>docker login</c> write, and the credential helpers those files name (<c>credHelpers</c> per registry,
/// <c>credsStore</c> for all), asked the way Docker asks them.
/// </summary>
public static class StoredCredentials
{
    /// <summary>Docker Hub's credentials are stored under this key, whatever name the registry is reached by.</summary>
    private const string DockerHubKey = "https://index.docker.io/v1/";

    private static readonly TimeSpan HelperTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The auth files in the order the tools read them; the first that holds credentials for the registry wins.</summary>
    private static IEnumerable<string> AuthFiles(Func<string, string?> environment)
    {
        var home = environment("HOME") ?? "";
        return new[]
        {
            environment("REGISTRY_AUTH_FILE"),
            environment("XDG_RUNTIME_DIR") is { } runtime ? Path.Combine(runtime, "containers", "auth.json") : null,
            Path.Combine(home, ".config", "containers", "auth.json"),
            Path.Combine(environment("DOCKER_CONFIG") ?? Path.Combine(home, ".docker"), "config.json"),
        }.OfType<string>();
    }

    /// <summary>
    /// User and password for <paramref name="repository"/> on <paramref name="registry"/>, or null for anonymous.
    /// In each auth file: the registry's credential helper, else the file's credential store, else the file's own
    /// entry (the one for host/namespace before the one for the host, as Podman reads them). A helper that has
    /// nothing for the registry means anonymous, as for Docker; a helper that cannot be run or answers nonsense is an
    /// error, since going on anonymously would hide why every request is refused.
    /// </summary>
    /// <exception cref="ArgumentException">A named helper is missing, failed, or gave an identity token.</exception>
    public static async Task<(string User, string Password)?> FindAsync(Uri registry, string repository, Func<string, string?> environment,
        CancellationToken cancellationToken)
    {
        var host = registry.IsDefaultPort ? registry.Host : $"{registry.Host}:{registry.Port}";
        var dockerHub = host is "docker.io" or "index.docker.io" or "registry-1.docker.io";
        var serverUrl = dockerHub ? DockerHubKey : host;
        foreach (var file in AuthFiles(environment).Where(File.Exists))
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(await File.ReadAllBytesAsync(file, cancellationToken));
            }
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
            {
                continue; // an unreadable auth file is no credentials, as for the container tools themselves
            }
            using (document)
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object) continue;
                if (Best(root, "credHelpers", host, dockerHub, repository) is { ValueKind: JsonValueKind.String } helper
                    && await AskHelperAsync(helper.GetString()!, serverUrl, file, environment, cancellationToken) is { } fromHelper)
                    return fromHelper;
                if (root.TryGetProperty("credsStore", out var store) && store.ValueKind == JsonValueKind.String && store.GetString() is { Length: > 0 } storeName
                    && await AskHelperAsync(storeName, serverUrl, file, environment, cancellationToken) is { } fromStore)
                    return fromStore;
                if (Best(root, "auths", host, dockerHub, repository) is { ValueKind: JsonValueKind.Object } entry
                    && entry.TryGetProperty("auth", out var auth) && auth.ValueKind == JsonValueKind.String && Decode(auth.GetString()!) is { } fromFile)
                    return fromFile;
            }
        }
        return null;
    }

    /// <summary>
    /// The entry of <c>root[section]</c> for this registry: a key host/namespace whose namespace holds the repository
    /// (the longest such), else the host itself. Keys may carry a scheme and a trailing slash; Docker Hub's are
    /// under its historical index URL.
    /// </summary>
    private static JsonElement? Best(JsonElement root, string section, string host, bool dockerHub, string repository)
    {
        if (!root.TryGetProperty(section, out var entries) || entries.ValueKind != JsonValueKind.Object) return null;
        JsonElement? best = null;
        var bestLength = -1;
        foreach (var entry in entries.EnumerateObject())
        {
            var key = entry.Name;
            if (key.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) key = key["https://".Length..];
            else if (key.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) key = key["http://".Length..];
            key = key.TrimEnd('/');
            if (dockerHub && key is "index.docker.io/v1" or "index.docker.io" or "docker.io" or "registry-1.docker.io") key = host;
            var slash = key.IndexOf('/');
            var keyHost = slash < 0 ? key : key[..slash];
            if (!string.Equals(keyHost, host, StringComparison.OrdinalIgnoreCase)) continue;
            var length = 0;
            if (slash >= 0)
            {
                var ns = key[(slash + 1)..];
                if (repository != ns && !repository.StartsWith(ns + "/", StringComparison.Ordinal)) continue;
                length = ns.Length;
            }
            if (length > bestLength) (best, bestLength) = (entry.Value, length);
        }
        return best;
    }

    private static (string User, string Password)? Decode(string auth)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(auth));
            var colon = text.IndexOf(':');
            return colon > 0 ? (text[..colon], text[(colon + 1)..]) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Runs <c>docker-credential-&lt;name&gt; get</c> with the server URL on its standard input, as Docker does; null
    /// when it has no credentials for that server.
    /// </summary>
    private static async Task<(string User, string Password)?> AskHelperAsync(string name, string serverUrl, string file,
        Func<string, string?> environment, CancellationToken cancellationToken)
    {
        var program = $"docker-credential-{name}";
        var path = (environment("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, program)).FirstOrDefault(File.Exists)
            ?? throw new ArgumentException($"{file} names the credential helper {name}, but {program} is not on the PATH");
        using var process = new Process
        {
            StartInfo = new ProcessStartInfo(path, ["get"])
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            },
        };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(HelperTimeout);
        string output, error;
        try
        {
            process.Start();
            var reading = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var readingErrors = process.StandardError.ReadToEndAsync(timeout.Token);
            try
            {
                await process.StandardInput.WriteAsync(serverUrl.AsMemory(), timeout.Token);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // It left without reading its input: what it printed and its exit code still say why.
            }
            output = await reading;
            error = await readingErrors;
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new ArgumentException($"the credential helper {program} did not answer within {HelperTimeout.TotalSeconds:0} s");
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ArgumentException($"the credential helper {program} could not be run: {e.Message}");
        }
        if (process.ExitCode != 0)
        {
            var message = (output + error).Trim();
            // The helpers' own wording for "nothing stored for this server" (docker-credential-helpers' ErrCredentialsNotFound).
            if (message.Contains("credentials not found", StringComparison.OrdinalIgnoreCase)) return null;
            throw new ArgumentException($"the credential helper {program} failed (exit {process.ExitCode}): {message}");
        }
        string? user, secret;
        try
        {
            using var answer = JsonDocument.Parse(output);
            if (answer.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException();
            user = answer.RootElement.TryGetProperty("Username", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : null;
            secret = answer.RootElement.TryGetProperty("Secret", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        }
        catch (JsonException)
        {
            throw new ArgumentException($"the credential helper {program} answered something other than its JSON credentials");
        }
        if (string.IsNullOrEmpty(secret)) return null;
        if (user == "<token>")
            throw new ArgumentException($"the credential helper {program} holds an identity token for {serverUrl}, which sync cannot use; give user:password with --src-creds/--dest-creds");
        return (user ?? "", secret);
    }
}
