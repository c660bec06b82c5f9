using System.Net;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

/// <summary>The reason the project exists: many jobs pushing the same content into new repositories at once.</summary>
public abstract class ConcurrencyTests(RegistryServerFixture fixture)
{
    private readonly HttpClient client = fixture.Client;

    [SkippableFact]
    public async Task ConcurrentUploadsOfSameBlobToNewRepositoriesAreAllImmediatelyReadable()
    {
        const int uploads = 60;
        var content = OciHttp.RandomBytes(4 * 1024 * 1024 + 123, 42);
        var digest = OciHttp.Sha256(content);
        var repositories = Enumerable.Range(0, 6).Select(i => $"race/new-{i}").ToArray();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var tasks = Enumerable.Range(0, uploads).Select(i => Task.Run(async () =>
        {
            var repository = repositories[i % repositories.Length];
            await gate.Task;
            // Half monolithic, half chunked: both finish paths race for the same digest.
            var pushed = i % 2 == 0
                ? await client.PushBlobAsync(repository, content)
                : await client.PushBlobChunkedAsync(repository, content, 1024 * 1024 + i);
            Assert.Equal(digest, pushed);
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}"));
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(content.Length, head.Content.Headers.ContentLength);
            return repository;
        })).ToArray();
        gate.SetResult();
        await Task.WhenAll(tasks);

        foreach (var repository in repositories)
        {
            using var get = await client.GetAsync($"v2/{repository}/blobs/{digest}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(content, await get.Content.ReadAsByteArrayAsync());
        }
        Assert.Empty(await fixture.Server.FilesBelowAsync("/uploads"));
        Assert.Empty(await fixture.Server.FilesBelowAsync("/tmp"));
    }

    [SkippableFact]
    public async Task ConcurrentFirstPushesOfImagesToOneNewRepositoryAllSucceed()
    {
        const int pushes = 40;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, pushes).Select(i => Task.Run(async () =>
        {
            await gate.Task;
            // Same layers for everyone (seed 7), a different tag each: shared blobs, distinct tag files.
            var (_, manifestDigest) = await client.PushImageAsync("race/first-push", $"job-{i}", seed: 7);
            using var get = await client.GetAsync($"v2/race/first-push/manifests/job-{i}");
            await get.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(manifestDigest, get.Headers.GetValues("Docker-Content-Digest").Single());
        })).ToArray();
        gate.SetResult();
        await Task.WhenAll(tasks);

        using var tags = await client.GetAsync("v2/race/first-push/tags/list");
        var body = await tags.Content.ReadAsStringAsync();
        for (var i = 0; i < pushes; i++) Assert.Contains($"\"job-{i}\"", body);
    }

    [SkippableFact]
    public async Task ConcurrentRetagsLeaveTheTagAtOneCompleteManifest()
    {
        var images = new List<(byte[] Manifest, string Digest)>();
        for (var i = 0; i < 4; i++) images.Add(await client.PushImageAsync("race/retag", $"seed-{i}", seed: 100 + i));
        // The tag exists before the race, so every read during it must find a complete manifest: a 404 would be the
        // tag missing between two writes.
        using (var first = await client.PutManifestAsync("race/retag", "latest", images[0].Manifest, OciHttp.OciManifest))
            await first.ExpectAsync(HttpStatusCode.Created);

        var writers = Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
        {
            var (manifest, _) = images[i % images.Count];
            using var put = await client.PutManifestAsync("race/retag", "latest", manifest, OciHttp.OciManifest);
            await put.ExpectAsync(HttpStatusCode.Created);
        })));
        var readers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            do
            {
                using var get = await client.GetAsync("v2/race/retag/manifests/latest");
                await get.ExpectAsync(HttpStatusCode.OK);
                var bytes = await get.Content.ReadAsByteArrayAsync();
                Assert.Equal(get.Headers.GetValues("Docker-Content-Digest").Single(), OciHttp.Sha256(bytes));
                Assert.Contains(images, image => image.Digest == OciHttp.Sha256(bytes));
            }
            while (!writers.IsCompleted);
        }));
        await Task.WhenAll(readers.Append(writers));

        using (var final = await client.GetAsync("v2/race/retag/manifests/latest"))
        {
            await final.ExpectAsync(HttpStatusCode.OK);
            Assert.Contains(images, image => image.Digest == final.Headers.GetValues("Docker-Content-Digest").Single());
        }
        // Temporaries are the filesystem driver's own (dot-named, never listed): only the disk can show them, and
        // with the in-memory driver there is nothing on disk.
        var onDisk = Path.Combine(fixture.Server.StorageRoot, "repositories");
        if (!Directory.Exists(onDisk)) return;
        Assert.DoesNotContain(Directory.EnumerateFiles(onDisk, "*", SearchOption.AllDirectories),
            path => Path.GetFileName(path).StartsWith('.'));
    }
}

/// <summary>Over the filesystem driver, the default.</summary>
public sealed class ConcurrencyTestsOnFilesystem(RegistryServerFixture fixture) : ConcurrencyTests(fixture), IClassFixture<RegistryServerFixture>;

/// <summary>Over the in-memory driver: clients must not be able to tell the difference.</summary>
public sealed class ConcurrencyTestsInMemory(InMemoryRegistryServerFixture fixture) : ConcurrencyTests(fixture), IClassFixture<InMemoryRegistryServerFixture>;
