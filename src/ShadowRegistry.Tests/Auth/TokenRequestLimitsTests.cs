using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Api;
using ShadowRegistry.Auth;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>
/// A registry with authentication on, in the Development environment (where ASP.NET Core would show exception
/// pages), to check that oversized or malformed token requests get clean OCI errors.
/// </summary>
public sealed class DevelopmentAuthServerFixture : IAsyncLifetime
{
    public RegistryServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await RegistryServer.StartAsync(Args(anonymousPull: true, "--environment", "Development"));

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The token endpoint's limits on what a request may carry (Auth:MaxTokenRequestBytes is 64 KiB by default).</summary>
public sealed class TokenRequestLimitsTests(DevelopmentAuthServerFixture fixture) : IClassFixture<DevelopmentAuthServerFixture>
{
    // The documented limits (docs/authentication.md, "Limits").
    private const int MaxValueLength = 16 * 1024;
    private const int MaxScopes = 100;
    private const int MaxFormFields = 128;

    private const string FormHead = "POST /auth/token HTTP/1.1\r\nHost: registry\r\nContent-Type: application/x-www-form-urlencoded\r\n";

    private readonly RegistryServer server = fixture.Server;

    [Fact]
    public async Task TwoMebibyteFormIsRefusedWith413WithoutWaitingForIt()
    {
        var prefix = Encoding.ASCII.GetBytes($"grant_type=password&username={Writer.Name}&password=");
        var (status, body) = await SendPartlyAsync($"{FormHead}Content-Length: {2 * 1024 * 1024}\r\n\r\n", [.. prefix, .. Filler(16 * 1024)]);
        ExpectCleanError(status, body, 413, "SIZE_INVALID");
        await ExpectEndpointStillWorksAsync();
    }

    [Fact]
    public async Task ChunkedFormWithoutContentLengthIsRefusedWith413AtTheLimit()
    {
        // 100 KiB in 4 KiB chunks and no final chunk: the server must stop at 64 KiB, not wait for the end. Each chunk
        // is a well-formed field (short key, value under the value limit), so only the body limit can refuse it.
        var chunks = new MemoryStream();
        for (var i = 0; i < 25; i++)
        {
            var field = Encoding.ASCII.GetBytes($"f{i:D2}=").Concat(Filler(4096 - 5)).Append((byte)'&').ToArray();
            chunks.Write(Encoding.ASCII.GetBytes("1000\r\n"));
            chunks.Write(field);
            chunks.Write("\r\n"u8);
        }
        var (status, body) = await SendPartlyAsync($"{FormHead}Transfer-Encoding: chunked\r\n\r\n", chunks.ToArray());
        ExpectCleanError(status, body, 413, "SIZE_INVALID");
    }

    [Fact]
    public async Task FormWithOneFiveMebibyteValueIsRefusedWith413()
    {
        var prefix = Encoding.ASCII.GetBytes($"grant_type=password&username={Writer.Name}&password=");
        var (status, body) = await SendPartlyAsync($"{FormHead}Content-Length: {prefix.Length + 5 * 1024 * 1024}\r\n\r\n", [.. prefix, .. Filler(128 * 1024)]);
        ExpectCleanError(status, body, 413, "SIZE_INVALID");
    }

    [Fact]
    public async Task ValueOverTheValueLimitButUnderTheBodyLimitIsRefusedWith400()
    {
        using var client = server.CreateClient();
        var password = new string('p', MaxValueLength + 1);
        using var response = await client.PostAsync("auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = Writer.Name, ["password"] = password, ["service"] = Service,
        }));
        var body = await response.Content.ReadAsStringAsync();
        ExpectCleanError((int)response.StatusCode, body, 400, "UNSUPPORTED");
        Assert.Contains("length limit", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TooManyFormFieldsAndMultipartFormsAreRefusedWith400()
    {
        using var client = server.CreateClient();
        var fields = Enumerable.Range(0, MaxFormFields + 1).Select(i => KeyValuePair.Create($"k{i}", "v"));
        using var many = await client.PostAsync("auth/token", new FormUrlEncodedContent(fields));
        ExpectCleanError((int)many.StatusCode, await many.Content.ReadAsStringAsync(), 400, "UNSUPPORTED");

        using var multipart = new ByteArrayContent("garbage"u8.ToArray());
        multipart.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=abc");
        using var parsed = await client.PostAsync("auth/token", multipart);
        ExpectCleanError((int)parsed.StatusCode, await parsed.Content.ReadAsStringAsync(), 400, "UNSUPPORTED");
    }

    [Fact]
    public async Task MoreThanTheScopeLimitIsRefusedWith400()
    {
        using var client = server.CreateClient();
        string[] Scopes(int count) => Enumerable.Range(0, count).Select(i => $"repository:many/r{i}:pull").ToArray();
        await TokenAsync(client, Writer, Scopes(MaxScopes));

        using var tooMany = await RequestTokenAsync(client, Writer.Name, Writer.Password, Scopes(MaxScopes + 1));
        ExpectCleanError((int)tooMany.StatusCode, await tooMany.Content.ReadAsStringAsync(), 400, "UNSUPPORTED");

        // Space-separated in one form value count the same.
        using var form = await client.PostAsync("auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = Writer.Name, ["password"] = Writer.Password, ["scope"] = string.Join(' ', Scopes(MaxScopes + 1)),
        }));
        ExpectCleanError((int)form.StatusCode, await form.Content.ReadAsStringAsync(), 400, "UNSUPPORTED");
    }

    [Fact]
    public async Task QueryStringOverTheLimitIsRefusedWith400()
    {
        // Kestrel refuses request lines over 8 KiB (414) before the endpoint sees them, so the endpoint is called
        // directly: it must not rely on that server-wide setting.
        var endpoint = server.Services.GetRequiredService<TokenEndpoint>();
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Get;
        context.Request.QueryString = new QueryString("?scope=" + new string('a', MaxValueLength));
        var error = await Assert.ThrowsAsync<RegistryError>(() => endpoint.HandleAsync(context));
        Assert.Equal(400, error.Status);
        Assert.Contains("query string", error.Message, StringComparison.Ordinal);
    }

    private async Task ExpectEndpointStillWorksAsync()
    {
        using var client = server.CreateClient();
        await TokenAsync(client, Writer, "repository:limits/app:pull");
    }

    private static void ExpectCleanError(int status, string body, int expectedStatus, string code)
    {
        Assert.True(status == expectedStatus, $"expected {expectedStatus} {code}, got {status}: {body[..Math.Min(body.Length, 300)]}");
        using var document = JsonDocument.Parse(body);
        Assert.Equal(code, document.RootElement.GetProperty("errors")[0].GetProperty("code").GetString());
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
    }

    private static byte[] Filler(int length) => Enumerable.Repeat((byte)'a', length).ToArray();

    /// <summary>
    /// Sends the request head and only the start of its body over a plain connection, then reads the answer. The
    /// rest of the body never comes: a server that waited for all of it would answer nothing.
    /// </summary>
    private async Task<(int Status, string Body)> SendPartlyAsync(string head, byte[] bodyStart)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port, timeout.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token);
        await stream.WriteAsync(bodyStart, timeout.Token);

        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            // The answer is chunked; it ends with the last chunk, or with the connection.
            while (!received.ToArray().AsSpan().EndsWith("\r\n0\r\n\r\n"u8))
            {
                var read = await stream.ReadAsync(buffer, timeout.Token);
                if (read == 0) break;
                received.Write(buffer, 0, read);
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Assert.Fail($"no answer within 30 s to a request whose body is incomplete: the server waits for the body ({received.Length} bytes received)");
        }
        catch (IOException) when (received.Length > 0)
        {
            // Reset after the answer: the server closed with the unread body still arriving.
        }
        return ParseResponse(Encoding.UTF8.GetString(received.ToArray()));
    }

    private static (int Status, string Body) ParseResponse(string response)
    {
        var headEnd = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(headEnd > 0, $"no complete response head in: {response}");
        var head = response[..headEnd];
        var status = int.Parse(head.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var rest = response[(headEnd + 4)..];
        if (!head.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase)) return (status, rest);
        var body = new StringBuilder();
        while (true)
        {
            var lineEnd = rest.IndexOf("\r\n", StringComparison.Ordinal);
            var size = Convert.ToInt32(rest[..lineEnd], 16);
            if (size == 0) break;
            body.Append(rest, lineEnd + 2, size);
            rest = rest[(lineEnd + 2 + size + 2)..];
        }
        return (status, body.ToString());
    }
}
