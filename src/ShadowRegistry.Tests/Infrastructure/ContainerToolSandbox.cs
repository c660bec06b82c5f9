using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A private world for skopeo and podman: its own registries.conf, containers.conf, storage.conf, signature policy and
/// auth file, and (for podman) its own vfs storage root, run root and libpod tmp dir, all in one scratch folder that is
/// deleted on dispose. Nothing the user or the machine has configured under ~/.config/containers, /etc/containers or
/// ~/.docker is read for registries, auth or storage.
/// </summary>
public sealed class ContainerToolSandbox : IAsyncDisposable
{
    private readonly ScratchDirectory scratch;
    private bool podmanUsed;

    public ContainerToolSandbox(string prefix = "tools")
    {
        scratch = new ScratchDirectory(prefix);
        var config = scratch.Folder("config");
        StorageRoot = scratch.Folder("storage");
        RunRoot = scratch.Folder("run");
        TempDir = scratch.Folder("tmp");
        PolicyPath = Path.Combine(config, "policy.json");
        var registriesConf = RegistriesConfPath = Path.Combine(config, "registries.conf");
        var containersConf = Path.Combine(config, "containers.conf");
        var storageConf = Path.Combine(config, "storage.conf");
        var authFile = Path.Combine(config, "auth.json");

        File.WriteAllText(registriesConf, """
            # Written by the ShadowRegistry end-to-end tests: no search registries, no mirrors; tests always name the registry.
            unqualified-search-registries = []
            """);
        File.WriteAllText(PolicyPath, """
            {"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}}}
            """);
        File.WriteAllText(authFile, """{"auths": {}}""");
        File.WriteAllText(containersConf, $"""
            [containers]
            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            events_logfile_path = "{Path.Combine(TempDir, "events.log")}"
            tmp_dir = "{TempDir}"
            """);
        File.WriteAllText(storageConf, $"""
            [storage]
            driver = "vfs"
            graphroot = "{StorageRoot}"
            runroot = "{RunRoot}"
            """);

        Environment = new Dictionary<string, string?>
        {
            ["CONTAINERS_REGISTRIES_CONF"] = registriesConf,
            ["CONTAINERS_CONF"] = containersConf,
            ["CONTAINERS_STORAGE_CONF"] = storageConf,
            ["REGISTRY_AUTH_FILE"] = authFile,
            ["DOCKER_CONFIG"] = scratch.Folder("docker-config"),
            ["XDG_CONFIG_HOME"] = scratch.Folder("xdg-config"),
            ["TMPDIR"] = TempDir,
            ["BUILDAH_ISOLATION"] = null,
            ["CONTAINER_HOST"] = null,
            ["CONTAINER_CONNECTION"] = null,
        };
    }

    public string Root => scratch.Path;

    public string StorageRoot { get; }

    public string RunRoot { get; }

    public string TempDir { get; }

    public string PolicyPath { get; }

    /// <summary>The sandbox's registries.conf (CONTAINERS_REGISTRIES_CONF); see <see cref="UseMirror"/>.</summary>
    public string RegistriesConfPath { get; }

    public IReadOnlyDictionary<string, string?> Environment { get; }

    /// <summary>
    /// Rewrites registries.conf so that images under <paramref name="prefix"/> (e.g. "upstream.test") are pulled from the
    /// plain-HTTP mirror <paramref name="mirror"/> (e.g. "127.0.0.1:5000") first, for tags as well as digests. The
    /// registry itself keeps its own location, so a pull that succeeds when that host does not resolve was served by
    /// the mirror. Still no search registries.
    /// </summary>
    public void UseMirror(string prefix, string mirror)
    {
        File.WriteAllText(RegistriesConfPath, $$"""
            # Written by the ShadowRegistry end-to-end tests: no search registries; {{prefix}} is pulled through a mirror.
            unqualified-search-registries = []

            [[registry]]
            prefix = "{{prefix}}"
            location = "{{prefix}}"

            [[registry.mirror]]
            location = "{{mirror}}"
            insecure = true
            """);
    }

    /// <summary>A new folder inside the sandbox (removed with it).</summary>
    public string Folder(params string[] parts) => scratch.Folder(parts);

    public string FilePath(params string[] parts) => scratch.FilePath(parts);

    /// <summary>
    /// skopeo with the sandbox's policy and configuration, registries.conf included (mirrors, see <see cref="UseMirror"/>).
    /// skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF and would read /etc/containers/registries.conf; its hidden global
    /// --registries-conf flag is what points it at ours. Pass TLS options per command.
    /// </summary>
    public ExternalTool Skopeo(ITestOutputHelper? output = null) => new("skopeo", output)
    {
        BaseArguments = ["--policy", PolicyPath, "--registries.d", Folder("registries.d"), "--registries-conf", RegistriesConfPath, "--tmpdir", TempDir],
        Environment = Environment,
        WorkingDirectory = Root,
    };

    /// <summary>podman on a private vfs storage, with no systemd, no journald and no remote connection.</summary>
    public ExternalTool Podman(ITestOutputHelper? output = null)
    {
        podmanUsed = true;
        return new ExternalTool("podman", output)
        {
            BaseArguments =
            [
                "--root", StorageRoot,
                "--runroot", RunRoot,
                "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs",
                "--events-backend", "file",
                "--tmpdir", TempDir,
            ],
            Environment = Environment,
            WorkingDirectory = Root,
        };
    }

    public async ValueTask DisposeAsync()
    {
        if (podmanUsed && !System.Environment.IsPrivilegedProcess)
        {
            // Rootless podman stores files owned by sub-uids; only its user namespace can remove them.
            try
            {
                await Podman().TryRunAsync("unshare", "rm", "-rf", StorageRoot, RunRoot);
            }
            catch (Exception)
            {
                // Best effort; the plain delete below removes what it can.
            }
        }
        scratch.Dispose();
    }
}
