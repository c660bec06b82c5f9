using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ShadowRegistry.Auth;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Auth;

/// <summary>Users, configuration arguments and token helpers shared by the authentication tests.</summary>
public static class AuthTestSupport
{
    public const string Secret = "test-only-hmac-secret-0123456789abcdef0123456789";
    public const string Service = "shadow-registry";

    /// <summary>Write role on every repository (a CI gate job).</summary>
    public static readonly TestUser Writer = new("gate", "gate-pässword:with colon", AuthRoles.Write);

    /// <summary>Read role on every repository.</summary>
    public static readonly TestUser Reader = new("reader", "reader-password", AuthRoles.Read);

    /// <summary>Write role on team-a/** only.</summary>
    public static readonly TestUser Team = new("team", "team-password", AuthRoles.Write, "team-a/**");

    private static readonly TestUser[] Users = [Writer, Reader, Team];

    // Hashed once per test run; low iterations keep tests fast (the format is self-describing, so that is a real hash).
    private static readonly Lazy<string[]> UserArguments = new(() => Users.SelectMany((user, i) => user.Arguments(i)).ToArray());

    /// <summary>Command-line configuration turning authentication on with the test users and a known HMAC secret.</summary>
    public static string[] Args(bool anonymousPull, params string[] extra) =>
    [
        "--Auth:Enabled", "true",
        "--Auth:AnonymousPull", anonymousPull ? "true" : "false",
        "--Auth:SigningKey:Secret", Secret,
        .. UserArguments.Value,
        .. extra,
    ];

    /// <summary>GET /auth/token with Basic credentials (none when <paramref name="user"/> is null); asserts 200 and returns the token.</summary>
    /// <summary>Pushes an image as the writer, with a token for exactly that repository.</summary>
    public static async Task<(byte[] Manifest, string Digest)> PushAsWriterAsync(RegistryServer server, HttpClient client, string repository, string tag, int seed)
    {
        var token = await TokenAsync(client, Writer, $"repository:{repository}:pull,push");
        using var writer = WithToken(server, token);
        return await writer.PushImageAsync(repository, tag, seed);
    }

    /// <summary>Pushes one blob as the writer, with a token for exactly that repository.</summary>
    public static async Task<string> PushBlobAsWriterAsync(RegistryServer server, HttpClient client, string repository, byte[] blob)
    {
        var token = await TokenAsync(client, Writer, $"repository:{repository}:pull,push");
        using var writer = WithToken(server, token);
        return await writer.PushBlobAsync(repository, blob);
    }

    public static async Task<string> TokenAsync(HttpClient client, TestUser? user, params string[] scopes)
    {
        using var response = await RequestTokenAsync(client, user?.Name, user?.Password, scopes);
        await response.ExpectAsync(HttpStatusCode.OK);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var token = body.RootElement.GetProperty("token").GetString()!;
        Assert.Equal(token, body.RootElement.GetProperty("access_token").GetString());
        Assert.True(body.RootElement.GetProperty("expires_in").GetInt32() > 0);
        Assert.True(DateTimeOffset.TryParse(body.RootElement.GetProperty("issued_at").GetString(), out _));
        return token;
    }

    public static async Task<HttpResponseMessage> RequestTokenAsync(HttpClient client, string? user, string? password, params string[] scopes)
    {
        var query = string.Concat(scopes.Select(scope => "&scope=" + Uri.EscapeDataString(scope)));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"auth/token?service={Service}{query}");
        if (user is not null) request.Headers.Authorization = Basic(user, password ?? "");
        return await client.SendAsync(request);
    }

    public static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    public static HttpRequestMessage Request(HttpMethod method, string uri, string? token)
    {
        var request = new HttpRequestMessage(method, uri);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    }

    public static async Task<HttpResponseMessage> SendAsync(this HttpClient client, HttpMethod method, string uri, string? token, HttpContent? content = null)
    {
        using var request = Request(method, uri, token);
        request.Content = content;
        return await client.SendAsync(request);
    }

    /// <summary>A client of the same server that sends the token on every request (for the OciHttp push helpers).</summary>
    public static HttpClient WithToken(RegistryServer server, string token)
    {
        var client = server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>The single Bearer challenge's parameters.</summary>
    public static Dictionary<string, string> BearerChallenge(HttpResponseMessage response)
    {
        var header = Assert.Single(response.Headers.WwwAuthenticate);
        Assert.Equal("Bearer", header.Scheme);
        var parameters = new Dictionary<string, string>();
        var text = header.Parameter ?? "";
        var i = 0;
        while (i < text.Length)
        {
            var equals = text.IndexOf('=', i);
            var key = text[i..equals].Trim(' ', ',');
            var value = new StringBuilder();
            var j = equals + 2; // past ="
            for (; text[j] != '"'; j++)
            {
                if (text[j] == '\\') j++;
                value.Append(text[j]);
            }
            parameters[key] = value.ToString();
            i = j + 1;
        }
        return parameters;
    }

    /// <summary>Asserts an OCI error with a fresh Bearer challenge pointing at this server's token endpoint.</summary>
    public static async Task<Dictionary<string, string>> ExpectChallengeAsync(this HttpResponseMessage response, HttpStatusCode status, string code, RegistryServer server, string? scope)
    {
        await response.ExpectErrorAsync(status, code);
        var challenge = BearerChallenge(response);
        Assert.Equal(new Uri(server.BaseAddress, "auth/token").ToString(), challenge["realm"]);
        Assert.Equal(Service, challenge["service"]);
        if (scope is null) Assert.False(challenge.ContainsKey("scope"));
        else Assert.Equal(scope, challenge["scope"]);
        return challenge;
    }

    /// <summary>A token signed with the servers' secret but otherwise made up (for expiry and audience tests).</summary>
    public static string ForgeToken(string? subject, IReadOnlyList<AccessScope> access, DateTimeOffset issuedAt, string service = Service, string? secret = null)
    {
        var tokens = new TokenService(
            Options.Create(new AuthOptions { Service = service, TokenLifetime = TimeSpan.FromMinutes(5) }),
            TokenSigningKey.FromSecret(Encoding.UTF8.GetBytes(secret ?? Secret)),
            new ManualTimeProvider(issuedAt));
        return tokens.Issue(subject, access).Token;
    }
}

public sealed record TestUser(string Name, string Password, string Role, params string[] Repositories)
{
    public IEnumerable<string> Arguments(int index)
    {
        yield return $"--Auth:Users:{index}:Name";
        yield return Name;
        yield return $"--Auth:Users:{index}:PasswordHash";
        yield return PasswordHash.Hash(Password, iterations: 1000);
        yield return $"--Auth:Users:{index}:Role";
        yield return Role;
        for (var i = 0; i < Repositories.Length; i++)
        {
            yield return $"--Auth:Users:{index}:Repositories:{i}";
            yield return Repositories[i];
        }
    }
}

/// <summary>A registry with authentication on and anonymous pull allowed (the default mode).</summary>
public sealed class AnonymousPullServerFixture : IAsyncLifetime
{
    public RegistryServer Server { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: true));
        Client = Server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>A registry in restricted mode: reads need authentication too.</summary>
public sealed class RestrictedServerFixture : IAsyncLifetime
{
    public RegistryServer Server { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false));
        Client = Server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
