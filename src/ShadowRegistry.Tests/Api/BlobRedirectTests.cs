using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ShadowRegistry.Storage.Drivers;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>A driver that hands out URLs of its own (as an object store's presigned ones) has clients sent there.</summary>
public sealed class BlobRedirectTests
{
    /// <summary>The in-memory driver, but with a URL for every blob, named after the method it is for.</summary>
    private sealed class RedirectingDriver(IStorageDriver inner) : DelegatingStorageDriver(inner)
    {
        public override Task<Uri?> RedirectUrlAsync(string path, HttpMethod method, CancellationToken cancellationToken) =>
            Task.FromResult<Uri?>(path.StartsWith("/blobs/", StringComparison.Ordinal) ? new Uri($"https://objects.example{path}?for={method.Method}") : null);
    }

    [Fact]
    public async Task GetAndHeadOfALocalBlobAreRedirectedToTheDriversUrl()
    {
        await using var server = await RegistryServer.StartAsync(
            services => services.AddSingleton<IStorageDriver>(new RedirectingDriver(new InMemoryDriver())), "--Registry:Storage:Driver", "inmemory");
        // The redirect itself is what is tested: not followed.
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        var digest = await client.PushBlobAsync("redirect/app", OciHttp.RandomBytes(1000, 81));
        var hex = digest["sha256:".Length..];

        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head })
        {
            using var response = await client.SendAsync(new HttpRequestMessage(method, $"v2/redirect/app/blobs/{digest}"));
            Assert.Equal(HttpStatusCode.TemporaryRedirect, response.StatusCode);
            Assert.Equal(new Uri($"https://objects.example/blobs/sha256/{hex[..2]}/{hex}?for={method.Method}"), response.Headers.Location);
            Assert.Equal(digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
        // Only blobs the repository holds are redirected.
        using var other = await client.GetAsync($"v2/redirect/other/blobs/{digest}");
        await other.ExpectErrorAsync(HttpStatusCode.NotFound, "BLOB_UNKNOWN");
    }
}
