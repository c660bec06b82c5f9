using System.Text;
using System.Text.Json.Nodes;
using ShadowRegistry.Cli;
using ShadowRegistry.Sync;
using ShadowRegistry.Tests.Auth;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Sync;

/// <summary>
/// The credentials sync finds where the container tools stored them: auth-file entries, credential helpers named per
/// registry (credHelpers) or for all (credsStore), Docker Hub's historical key, Podman's host/namespace entries; and a
/// sync against a registry that refuses anonymous reads, with the password only in a helper.
/// </summary>
public sealed class StoredCredentialsTests : IDisposable
{
    private readonly ScratchDirectory scratch = new("creds");
    private readonly string home;
    private readonly string bin;
    private readonly Dictionary<string, string> variables = [];

    public StoredCredentialsTests()
    {
        home = scratch.Folder("home");
        bin = scratch.Folder("bin");
        variables["HOME"] = home;
        variables["PATH"] = bin;
    }

    public void Dispose() => scratch.Dispose();

    private string? Environment(string name) => variables.GetValueOrDefault(name);

    private static string Auth(string user, string password) => Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));

    private void DockerConfig(JsonObject config)
    {
        File.WriteAllText(Path.Combine(scratch.Folder("home", ".docker"), "config.json"), config.ToJsonString());
    }

    /// <summary>
    /// A helper as a shell script: records each server URL it is asked for (one line per call), answers with the
    /// given JSON, or fails with the given text and exit code.
    /// </summary>
    private string Helper(string name, string answer, int exit = 0)
    {
        var path = Path.Combine(bin, $"docker-credential-{name}");
        var asked = Path.Combine(scratch.Path, $"{name}.asked");
        File.WriteAllText(path, $"""
            #!/bin/sh
            [ "$1" = get ] || {"{"} echo "unexpected action $1" >&2; exit 3; {"}"}
            cat >> '{asked}'; echo >> '{asked}'
            printf '%s' '{answer}'
            exit {exit}
            """.Replace("\r", ""));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return asked;
    }

    private Task<(string User, string Password)?> FindAsync(string registry, string repository = "team/app") =>
        StoredCredentials.FindAsync(new Uri(registry), repository, Environment, CancellationToken.None);

    [Fact]
    public async Task AnAuthFileEntryIsFoundByHostAndPortWhateverSchemeOrSlashItWasStoredWith()
    {
        DockerConfig(new JsonObject
        {
            ["auths"] = new JsonObject
            {
                ["https://registry.example:5000/"] = new JsonObject { ["auth"] = Auth("alice", "pa:ss") },
                ["registry.example"] = new JsonObject { ["auth"] = Auth("bob", "other") },
            },
        });
        Assert.Equal(("alice", "pa:ss"), await FindAsync("https://registry.example:5000"));
        Assert.Equal(("bob", "other"), await FindAsync("https://registry.example"));
        Assert.Null(await FindAsync("https://elsewhere.example"));
    }

    [Fact]
    public async Task ThePodmanAuthFileIsReadBeforeTheDockerOneAndANamespaceEntryBeforeItsHost()
    {
        DockerConfig(new JsonObject { ["auths"] = new JsonObject { ["quay.example"] = new JsonObject { ["auth"] = Auth("docker", "d") } } });
        var podman = scratch.FilePath("auth.json");
        File.WriteAllText(podman, new JsonObject
        {
            ["auths"] = new JsonObject
            {
                ["quay.example"] = new JsonObject { ["auth"] = Auth("podman", "p") },
                ["quay.example/team"] = new JsonObject { ["auth"] = Auth("team", "t") },
                ["quay.example/team/app"] = new JsonObject { ["auth"] = Auth("app", "a") },
            },
        }.ToJsonString());
        variables["REGISTRY_AUTH_FILE"] = podman;
        Assert.Equal(("app", "a"), await FindAsync("https://quay.example", "team/app"));
        Assert.Equal(("team", "t"), await FindAsync("https://quay.example", "team/application"));
        Assert.Equal(("podman", "p"), await FindAsync("https://quay.example", "teams/app"));
        File.WriteAllText(podman, "{ not json");
        Assert.Equal(("docker", "d"), await FindAsync("https://quay.example", "team/app"));
    }

    [Theory]
    [InlineData("https://docker.io")]
    [InlineData("https://registry-1.docker.io")]
    [InlineData("https://index.docker.io")]
    public async Task DockerHubIsFoundUnderItsIndexKeyAndItsHelperIsAskedForThatKey(string registry)
    {
        DockerConfig(new JsonObject { ["auths"] = new JsonObject { ["https://index.docker.io/v1/"] = new JsonObject { ["auth"] = Auth("hub", "h") } } });
        Assert.Equal(("hub", "h"), await FindAsync(registry, "library/debian"));

        var asked = Helper("hub", """{"ServerURL":"https://index.docker.io/v1/","Username":"hubhelper","Secret":"s"}""");
        DockerConfig(new JsonObject { ["credsStore"] = "hub", ["auths"] = new JsonObject { ["https://index.docker.io/v1/"] = new JsonObject() } });
        Assert.Equal(("hubhelper", "s"), await FindAsync(registry, "library/debian"));
        Assert.Equal("https://index.docker.io/v1/\n", File.ReadAllText(asked));
    }

    [Fact]
    public async Task TheRegistrysOwnHelperComesBeforeTheStoreAndTheStoreBeforeTheFile()
    {
        var own = Helper("own", """{"ServerURL":"127.0.0.1:5000","Username":"own-user","Secret":"own-secret"}""");
        var store = Helper("store", """{"ServerURL":"x","Username":"store-user","Secret":"store-secret"}""");
        DockerConfig(new JsonObject
        {
            ["credHelpers"] = new JsonObject { ["127.0.0.1:5000"] = "own" },
            ["credsStore"] = "store",
            ["auths"] = new JsonObject
            {
                ["127.0.0.1:5000"] = new JsonObject { ["auth"] = Auth("file", "f") },
                ["127.0.0.1:6000"] = new JsonObject { ["auth"] = Auth("file", "f") },
            },
        });
        Assert.Equal(("own-user", "own-secret"), await FindAsync("http://127.0.0.1:5000"));
        Assert.Equal("127.0.0.1:5000\n", File.ReadAllText(own));
        Assert.Equal(("store-user", "store-secret"), await FindAsync("http://127.0.0.1:6000"));
        Assert.Equal("127.0.0.1:6000\n", File.ReadAllText(store));
    }

    [Fact]
    public async Task AHelperWithNothingForTheRegistryMeansTheFilesEntryOrAnonymous()
    {
        var asked = Helper("empty", "credentials not found in native keychain", exit: 1);
        DockerConfig(new JsonObject
        {
            ["credsStore"] = "empty",
            ["auths"] = new JsonObject { ["127.0.0.1:5000"] = new JsonObject { ["auth"] = Auth("file", "f") } },
        });
        Assert.Equal(("file", "f"), await FindAsync("http://127.0.0.1:5000"));
        Assert.Null(await FindAsync("http://127.0.0.1:6000"));
        Assert.Equal("127.0.0.1:5000\n127.0.0.1:6000\n", File.ReadAllText(asked));
    }

    [Theory]
    [InlineData("missing", null, 0, "docker-credential-missing is not on the PATH")]
    [InlineData("broken", "keychain locked", 7, "failed (exit 7): keychain locked")]
    [InlineData("garbage", "not json", 0, "answered something other than its JSON credentials")]
    [InlineData("array", "[]", 0, "answered something other than its JSON credentials")]
    [InlineData("identity", """{"Username":"<token>","Secret":"refresh"}""", 0, "holds an identity token")]
    public async Task AHelperThatCannotBeRunOrAnswersNonsenseIsAnErrorThatSaysSo(string name, string? answer, int exit, string message)
    {
        if (answer is not null) Helper(name, answer, exit);
        DockerConfig(new JsonObject { ["credHelpers"] = new JsonObject { ["127.0.0.1:5000"] = name } });
        var error = await Assert.ThrowsAsync<ArgumentException>(() => FindAsync("http://127.0.0.1:5000"));
        Assert.Contains(message, error.Message);
    }

    /// <summary>
    /// A source that refuses anonymous reads: without stored credentials the check fails with an error (exit 2); with
    /// the reader's password only in a credential helper, the sync copies the tag and the check agrees.
    /// </summary>
    [Fact]
    public async Task ASyncFromARegistryThatNeedsAPasswordTakesItFromTheCredentialHelper()
    {
        await using var source = await RegistryServer.StartAsync(AuthTestSupport.Args(anonymousPull: false, "--Registry:Storage:Driver", "inmemory"));
        await using var destination = await RegistryServer.StartAsync("--Registry:Storage:Driver", "inmemory");
        using var client = source.CreateClient();
        var (_, digest) = await AuthTestSupport.PushAsWriterAsync(source, client, "secured/app", "v1", seed: 3);
        var host = $"{source.BaseAddress.Host}:{source.BaseAddress.Port}";
        string[] args = [$"http://{host}/secured/app", $"http://{destination.BaseAddress.Host}:{destination.BaseAddress.Port}/copied/app"];

        var anonymous = await RunAsync(sync: false, args);
        Assert.True(anonymous.Exit == SyncCommand.Error, anonymous.Output + anonymous.Errors);

        var reader = AuthTestSupport.Reader;
        var asked = Helper("ci", new JsonObject { ["ServerURL"] = host, ["Username"] = reader.Name, ["Secret"] = reader.Password }.ToJsonString());
        DockerConfig(new JsonObject { ["credHelpers"] = new JsonObject { [host] = "ci" } });
        var synced = await RunAsync(sync: true, args);
        Assert.True(synced.Exit == SyncCommand.InSync, synced.Output + synced.Errors);
        Assert.StartsWith($"{host}\n", File.ReadAllText(asked));
        using var copied = destination.CreateClient();
        Assert.Equal(digest, (await copied.GetManifestAsync("copied/app", "v1")).Digest);
    }

    private async Task<(int Exit, string Output, string Errors)> RunAsync(bool sync, string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await SyncCommand.RunAsync(args, sync, stdout, stderr, Environment, CancellationToken.None);
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
