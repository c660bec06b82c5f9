using Xunit.Abstractions;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// What every playbook test needs: a registry started for it, ansible-playbook run against localhost
/// (connection=local) inside a tool sandbox without privilege escalation, and the repository's playbooks folder.
/// </summary>
public abstract class PlaybookRun(ITestOutputHelper output, string sandboxName, params string[] registryArguments) : IAsyncLifetime
{
    protected static readonly string Playbooks = Path.Combine(TestPaths.RepositoryRoot(), "playbooks");

    protected ContainerToolSandbox Sandbox { get; } = new(sandboxName);

    protected RegistryServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ExternalTool.Require("ansible-playbook");
        Server = await RegistryServer.StartAsync(registryArguments);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        await Sandbox.DisposeAsync();
    }

    /// <summary>ansible-playbook against localhost, inside the tool sandbox (tests run as root or not at all).</summary>
    protected ExternalTool Ansible() => new("ansible-playbook", output)
    {
        Environment = new Dictionary<string, string?>(Sandbox.Environment)
        {
            ["ANSIBLE_LOCAL_TEMP"] = Sandbox.Folder("ansible-local"),
            ["ANSIBLE_REMOTE_TEMP"] = Sandbox.Folder("ansible-remote"),
            ["ANSIBLE_NOCOLOR"] = "1",
            ["ANSIBLE_RETRY_FILES_ENABLED"] = "0",
        },
        WorkingDirectory = Playbooks,
        Timeout = TimeSpan.FromMinutes(3),
    };

    /// <summary>This machine as every group the playbooks target, reached without SSH.</summary>
    protected string Inventory()
    {
        var path = Path.Combine(Sandbox.Folder("inventory"), "hosts.ini");
        File.WriteAllText(path, "[registry]\nlocalhost ansible_connection=local\n\n[ci_nodes]\nlocalhost ansible_connection=local\n");
        return path;
    }

    /// <summary>The arguments of a run of <paramref name="playbook"/> against localhost and the test's registry.</summary>
    protected string[] Local(string playbook, params string[] more) =>
    [
        "-i", Inventory(), playbook,
        "-e", "shadow_registry_host=127.0.0.1", "-e", $"shadow_registry_port={Server.BaseAddress.Port}",
        "-e", "ansible_become=false", "-e", "ansible_python_interpreter=/usr/bin/python3",
        .. more,
    ];
}
