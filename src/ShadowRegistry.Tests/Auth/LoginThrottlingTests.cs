using System.Net;
using System.Net.Sockets;
using ShadowRegistry.Tests.Infrastructure;
using static ShadowRegistry.Tests.Auth.AuthTestSupport;

namespace ShadowRegistry.Tests.Auth;

/// <summary>Failed logins at the token endpoint are throttled per user name and per client address.</summary>
public sealed class LoginThrottlingTests
{
    private static readonly IPAddress OtherAddress = IPAddress.Parse("127.0.0.2");

    [Fact]
    public async Task ConcurrentWrongLoginsBeyondTheLimitGet429WhileOtherUsersFromOtherAddressesLogIn()
    {
        // One hash at a time makes the count exact: each check sees every failure before it.
        await using var server = await RegistryServer.StartAsync(Args(anonymousPull: true,
            "--Auth:FailedLoginLimit", "3", "--Auth:FailedLoginWindow", "01:00:00", "--Auth:MaxConcurrentPasswordChecks", "1"));
        using var client = server.CreateClient();
        using var fromElsewhere = ClientFrom(server, OtherAddress);

        var responses = await Task.WhenAll(Enumerable.Range(0, 32).Select(i => RequestTokenAsync(client, Reader.Name, $"guess-{i}", "repository:open/x:pull")));
        try
        {
            Assert.Equal([(HttpStatusCode.Unauthorized, 3), (HttpStatusCode.TooManyRequests, 29)],
                responses.GroupBy(response => response.StatusCode).OrderBy(group => group.Key).Select(group => (group.Key, group.Count())));
            foreach (var response in responses.Where(response => response.StatusCode == HttpStatusCode.TooManyRequests))
                await ExpectThrottledAsync(response, "from this address");
        }
        finally
        {
            foreach (var response in responses) response.Dispose();
        }

        // The right password is refused too while throttled: otherwise guessing would go on, only slower.
        using (var right = await RequestTokenAsync(client, Reader.Name, Reader.Password)) await ExpectThrottledAsync(right, "from this address");
        using (var rightElsewhere = await RequestTokenAsync(fromElsewhere, Reader.Name, Reader.Password)) await ExpectThrottledAsync(rightElsewhere, "for this user");
        using (var oauth = await fromElsewhere.PostAsync("auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = Reader.Name, ["password"] = Reader.Password, ["service"] = Service,
        })))
        {
            await ExpectThrottledAsync(oauth, "for this user");
        }

        // Another user from another address is unaffected; from the throttled address it is not.
        await TokenAsync(fromElsewhere, Writer, "repository:open/x:pull,push");
        using (var writerHere = await RequestTokenAsync(client, Writer.Name, Writer.Password)) await ExpectThrottledAsync(writerHere, "from this address");
        // Anonymous tokens need no password check and stay available.
        await TokenAsync(client, null, "repository:open/x:pull");
    }

    private static async Task ExpectThrottledAsync(HttpResponseMessage response, string reason)
    {
        await response.ExpectErrorAsync(HttpStatusCode.TooManyRequests, "TOOMANYREQUESTS");
        Assert.Equal(TimeSpan.FromHours(1), response.Headers.RetryAfter?.Delta);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains(reason, body, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
    }

    /// <summary>A client whose connections come from another loopback address (all of 127/8 is local on Linux).</summary>
    private static HttpClient ClientFrom(RegistryServer server, IPAddress local) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(local, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    {
        BaseAddress = server.BaseAddress,
        Timeout = TimeSpan.FromMinutes(2),
    };
}
