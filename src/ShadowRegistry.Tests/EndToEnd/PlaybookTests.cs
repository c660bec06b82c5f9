using System.Net;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// The Ansible playbooks, run for real with Debian's ansible-core on this machine (connection=local): every playbook
/// passes --syntax-check; configure-clients.yml stages its files below a scratch /etc and is idempotent; and
/// functional-test.yml pushes, pulls and compares an image against a registry started by the test.
/// </summary>
public sealed class PlaybookTests(ITestOutputHelper output) : PlaybookRun(output, "ansible")
{
    [Fact]
    public async Task EveryPlaybookPassesTheSyntaxCheck()
    {
        var ansible = Ansible();
        foreach (var playbook in Directory.GetFiles(Playbooks, "*.yml"))
            await ansible.RunAsync("-i", Inventory(), "--syntax-check", playbook);
    }

    [Fact]
    public async Task ConfigureClientsWritesEveryToolsConfigurationAndIsIdempotent()
    {
        var etc = Sandbox.Folder("etc");
        Directory.CreateDirectory(Path.Combine(etc, "docker"));
        // An existing daemon.json keeps its own settings; the registry is merged in.
        File.WriteAllText(Path.Combine(etc, "docker", "daemon.json"), """{"log-level": "warn", "insecure-registries": ["other:5000"]}""");
        var address = Server.HostPort;
        string[] staged = ["-e", $"shadow_registry_etc={etc}", "-e", """{"shadow_registry_mirror_of": ["docker.io"]}"""];

        var first = await Ansible().RunAsync(Local("configure-clients.yml", staged));
        Assert.Contains("failed=0", first.StandardOutput);

        var registries = File.ReadAllText(Path.Combine(etc, "containers", "registries.conf.d", "50-shadow-registry.conf"));
        Assert.Contains($"location = \"{address}\"\ninsecure = true", registries);
        Assert.Contains($"[[registry.mirror]]\nlocation = \"{address}/docker.io\"", registries);

        var hosts = File.ReadAllText(Path.Combine(etc, "containerd", "certs.d", address, "hosts.toml"));
        Assert.Contains($"server = \"http://{address}\"", hosts);
        var mirror = File.ReadAllText(Path.Combine(etc, "containerd", "certs.d", "docker.io", "hosts.toml"));
        Assert.Contains("server = \"https://registry-1.docker.io\"", mirror);
        Assert.Contains($"[host.\"http://{address}\"]\n  capabilities = [\"pull\", \"resolve\"]", mirror);

        var daemon = JsonNode.Parse(File.ReadAllText(Path.Combine(etc, "docker", "daemon.json")))!;
        Assert.Equal("warn", daemon["log-level"]!.GetValue<string>());
        Assert.Equal(["other:5000", address], daemon["insecure-registries"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal([$"http://{address}"], daemon["registry-mirrors"]!.AsArray().Select(n => n!.GetValue<string>()));

        // A second run changes nothing.
        var second = await Ansible().RunAsync(Local("configure-clients.yml", staged));
        Assert.Contains("changed=0", second.StandardOutput);
        Assert.Contains("failed=0", second.StandardOutput);
    }

    [Fact]
    public async Task FunctionalTestPushesPullsAndComparesAgainstTheRegistry()
    {
        ExternalTool.Require("skopeo");
        ExternalTool.Require("podman");
        var run = await Ansible().RunAsync(Local("functional-test.yml",
            "-e", "shadow_registry_test_install=false",
            "-e", "shadow_registry_test_repository=playbook/functional-test"));
        Assert.Contains("failed=0", run.StandardOutput);

        // It cleaned up after itself: the repository exists (it was pushed to) but holds no tag any more.
        using var client = Server.CreateClient();
        using var tags = await client.GetAsync("v2/playbook/functional-test/tags/list");
        Assert.Equal(HttpStatusCode.OK, tags.StatusCode);
        var list = JsonNode.Parse(await tags.Content.ReadAsStringAsync())!["tags"]?.AsArray();
        Assert.True(list is null || list.Count == 0, $"tags left behind: {list?.ToJsonString()}");
    }

}
