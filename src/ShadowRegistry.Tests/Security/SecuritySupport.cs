using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ShadowRegistry.Tests.Security;

/// <summary>One HTTP response as the security tests look at it: status, headers (response and content) and body.</summary>
public sealed record Reply(int Status, string Method, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    public string Text => Encoding.UTF8.GetString(Body);

    /// <summary>errors[0].code of an OCI error body, or null when the body is not one.</summary>
    public string? ErrorCode
    {
        get
        {
            try
            {
                using var document = JsonDocument.Parse(Body);
                return document.RootElement.GetProperty("errors")[0].GetProperty("code").GetString();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
            {
                return null;
            }
        }
    }

    /// <summary>"403 DENIED", "200", "404 MANIFEST_UNKNOWN": what a table of results shows.</summary>
    public string Summary => Status >= 400 && ErrorCode is { } code ? $"{Status} {code}" : Status.ToString();

    /// <summary>The body for a failure message: printable, and cut short.</summary>
    public string Excerpt(int max = 300) => SecurityChecks.Printable(Encoding.Latin1.GetString(Body.AsSpan(0, Math.Min(Body.Length, max))))
                                           + (Body.Length > max ? "…" : "");

    public static async Task<Reply> FromAsync(HttpResponseMessage response)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, values) in response.Headers) headers[key] = string.Join(", ", values);
        foreach (var (key, values) in response.Content.Headers) headers[key] = string.Join(", ", values);
        var body = await response.Content.ReadAsByteArrayAsync();
        return new Reply((int)response.StatusCode, response.RequestMessage?.Method.Method ?? "", headers, body);
    }
}

/// <summary>Checks and tools shared by the security tests.</summary>
public static class SecurityChecks
{
    /// <summary>Control and non-ASCII characters spelled out, so a failure message shows what was really there.</summary>
    public static string Printable(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            builder.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\0' => "\\0",
                < ' ' or (> '~' and < '\u00a0') => $"\\x{(int)c:x2}",
                > '~' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return builder.ToString();
    }

    /// <summary>
    /// Null when the body is an OCI error body ({"errors":[{"code","message",...}]} with a JSON content type),
    /// else what is wrong with it.
    /// </summary>
    public static string? OciErrorProblem(Reply reply)
    {
        if (reply.Body.Length == 0) return "empty body";
        if (reply.Header("Content-Type") is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return $"Content-Type '{reply.Header("Content-Type")}' is not JSON";
        try
        {
            using var document = JsonDocument.Parse(reply.Body);
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("errors", out var errors)
                || errors.ValueKind != JsonValueKind.Array || errors.GetArrayLength() == 0)
                return "no non-empty 'errors' array";
            foreach (var error in errors.EnumerateArray())
            {
                if (error.ValueKind != JsonValueKind.Object
                    || !error.TryGetProperty("code", out var code) || code.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(code.GetString())
                    || !error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String)
                    return "an error entry lacks a string 'code' or 'message'";
            }
            return null;
        }
        catch (JsonException)
        {
            return "body is not JSON";
        }
    }

    /// <summary>True when the body shows signs of a .NET stack trace or exception dump.</summary>
    public static bool LeaksStackTrace(Reply reply)
    {
        var text = Encoding.Latin1.GetString(reply.Body);
        return text.Contains("   at ", StringComparison.Ordinal) || text.Contains("Exception", StringComparison.Ordinal);
    }

    /// <summary>The parameters of a Bearer challenge, or null when the header is not a single Bearer challenge.</summary>
    public static Dictionary<string, string>? BearerChallenge(Reply reply)
    {
        var header = reply.Header("WWW-Authenticate");
        if (header is null || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return null;
        var text = header["Bearer ".Length..];
        var parameters = new Dictionary<string, string>();
        var i = 0;
        while (i < text.Length)
        {
            var equals = text.IndexOf('=', i);
            if (equals < 0 || equals + 1 >= text.Length || text[equals + 1] != '"') return null;
            var key = text[i..equals].Trim(' ', ',');
            var value = new StringBuilder();
            var j = equals + 2;
            for (; j < text.Length && text[j] != '"'; j++)
            {
                if (text[j] == '\\') j++;
                if (j < text.Length) value.Append(text[j]);
            }
            parameters[key] = value.ToString();
            i = j + 1;
        }
        return parameters;
    }

    /// <summary>
    /// The stored data: every file below blobs/ and repositories/ (relative path → SHA-256 of its content), leaving
    /// out dot-named temporaries.
    /// </summary>
    public static SortedDictionary<string, string> StoredData(string storageRoot)
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var top in new[] { "blobs", "repositories" })
        {
            var root = Path.Combine(storageRoot, top);
            if (!Directory.Exists(root)) continue;
            foreach (var path in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            {
                if (Path.GetFileName(path).StartsWith('.')) continue;
                string hash;
                try
                {
                    hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
                }
                catch (FileNotFoundException)
                {
                    continue; // removed while listing
                }
                files[Path.GetRelativePath(storageRoot, path)] = hash;
            }
        }
        return files;
    }

    /// <summary>Upload session ids: the folders below uploads/.</summary>
    public static HashSet<string> UploadSessions(string storageRoot)
    {
        var uploads = Path.Combine(storageRoot, "uploads");
        return Directory.Exists(uploads) ? Directory.EnumerateDirectories(uploads).Select(path => Path.GetFileName(path)!).ToHashSet() : [];
    }

    /// <summary>Readable differences between two snapshots of <see cref="StoredData"/>; empty when they are equal.</summary>
    public static List<string> Differences(SortedDictionary<string, string> before, SortedDictionary<string, string> after)
    {
        var differences = new List<string>();
        foreach (var (path, hash) in before)
        {
            if (!after.TryGetValue(path, out var now)) differences.Add($"removed {Printable(path)}");
            else if (now != hash) differences.Add($"changed {Printable(path)}");
        }
        foreach (var path in after.Keys.Where(path => !before.ContainsKey(path))) differences.Add($"added {Printable(path)}");
        return differences;
    }
}

/// <summary>
/// HTTP/1.1 over a plain socket, for requests HttpClient would refuse or quietly repair: raw control characters and
/// dot segments in the request target, Content-Length that does not match the body, odd methods and header values.
/// Every request carries Connection: close; the response is read to the end of the connection.
/// </summary>
public static class RawHttp
{
    public sealed record Request(string Method, string Target)
    {
        public List<KeyValuePair<string, string>> Headers { get; init; } = [];

        public byte[]? Body { get; init; }

        /// <summary>Do not add a Content-Length for the body (the test sets its own, or none).</summary>
        public bool NoContentLength { get; init; }

        /// <summary>Close the sending half after the body, so a server waiting for more sees the end.</summary>
        public bool HalfClose { get; init; }
    }

    public static async Task<Reply> SendAsync(Uri server, Request request, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        using var socket = new TcpClient();
        await socket.ConnectAsync(server.Host, server.Port, cancel.Token);
        var stream = socket.GetStream();

        var head = new StringBuilder();
        head.Append($"{request.Method} {request.Target} HTTP/1.1\r\n");
        head.Append($"Host: {server.Host}:{server.Port}\r\n");
        foreach (var (name, value) in request.Headers) head.Append($"{name}: {value}\r\n");
        var hasLength = request.Headers.Any(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)
                                                 || h.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase));
        if (!request.NoContentLength && !hasLength && (request.Body is not null || request.Method is "POST" or "PUT" or "PATCH"))
            head.Append($"Content-Length: {request.Body?.Length ?? 0}\r\n");
        head.Append("Connection: close\r\n\r\n");

        // Latin-1: every char below U+0100 becomes exactly that byte, so control characters go out as written.
        await stream.WriteAsync(Encoding.Latin1.GetBytes(head.ToString()), cancel.Token);
        if (request.Body is { Length: > 0 } body) await stream.WriteAsync(body, cancel.Token);
        await stream.FlushAsync(cancel.Token);
        if (request.HalfClose) socket.Client.Shutdown(SocketShutdown.Send);

        var received = new MemoryStream();
        var buffer = new byte[16384];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cancel.Token)) > 0) received.Write(buffer, 0, read);
        }
        catch (IOException) when (received.Length > 0)
        {
            // A reset after the response (the server closing on unread request bytes): keep what arrived.
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no complete response to {request.Method} {SecurityChecks.Printable(request.Target)} within the timeout; got {received.Length} bytes");
        }
        return Parse(request.Method, received.ToArray());
    }

    private static Reply Parse(string method, byte[] raw)
    {
        var end = IndexOf(raw, "\r\n\r\n"u8);
        if (end < 0) throw new InvalidDataException($"no complete HTTP response head in {raw.Length} bytes: {SecurityChecks.Printable(Encoding.Latin1.GetString(raw))}");
        var lines = Encoding.Latin1.GetString(raw, 0, end).Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1]);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var earlier) ? $"{earlier}, {value}" : value;
        }
        var rest = raw.AsSpan(end + 4);
        byte[] body;
        if (method == "HEAD" || status is 204 or 304 || status < 200) body = [];
        else if (headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase)) body = Dechunk(rest);
        else if (headers.TryGetValue("Content-Length", out var length) && long.TryParse(length, out var n)) body = rest[..(int)Math.Min(n, rest.Length)].ToArray();
        else body = rest.ToArray();
        return new Reply(status, method, headers, body);
    }

    private static byte[] Dechunk(ReadOnlySpan<byte> data)
    {
        var output = new MemoryStream();
        while (true)
        {
            var lineEnd = IndexOf(data, "\r\n"u8);
            if (lineEnd < 0) break;
            var sizeText = Encoding.ASCII.GetString(data[..lineEnd]).Split(';')[0].Trim();
            var size = Convert.ToInt32(sizeText, 16);
            data = data[(lineEnd + 2)..];
            if (size == 0 || size > data.Length) break;
            output.Write(data[..size]);
            data = data[Math.Min(data.Length, size + 2)..];
        }
        return output.ToArray();
    }

    private static int IndexOf(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> needle) => haystack.IndexOf(needle);
}
