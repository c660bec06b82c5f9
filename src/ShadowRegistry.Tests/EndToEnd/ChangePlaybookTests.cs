using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using ShadowRegistry.Tests.Changes;
using ShadowRegistry.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ShadowRegistry.Tests.EndToEnd;

/// <summary>
/// change-start.yml and change-finish.yml (speculative changes, issue 10), run for real with Debian's ansible-core on
/// this machine (connection=local, as in <see cref="PlaybookTests"/>) against a registry started by the test with a
/// change host suffix: the change is created with its queue and labels, the three clients' files are staged below a
/// scratch /etc and point at the change's view, a second run changes nothing, an image pushed through the view is
/// promoted on "merged" (a wrong expectation fails the play first and changes nothing) and the change deleted, the
/// node's files are put back; "abandoned" deletes a change and tolerates one that is already gone.
/// </summary>
public sealed class ChangePlaybookTests(ITestOutputHelper output) : PlaybookRun(output, "ansible-changes", "--Changes:HostSuffix", HostSuffix)
{
    private const string HostSuffix = "changes.test";

    [Fact]
    public async Task BothPlaybooksPassTheSyntaxCheck()
    {
        var ansible = Ansible();
        foreach (var playbook in new[] { "change-start.yml", "change-finish.yml" })
            await ansible.RunAsync("-i", Inventory(), "--syntax-check", Path.Combine(Playbooks, playbook));
    }

    [Fact]
    public async Task StartPointsTheClientsAtTheViewAndFinishMergedPromotesDeletesAndRestores()
    {
        using var client = Server.CreateClient();
        var address = Server.HostPort;
        var port = Server.BaseAddress.Port;
        await client.PutChangeAsync("q1", HttpStatusCode.Created);

        // The node as configure-clients.yml (or its admin) left it: Docker with a stale change mirror, containerd with
        // its own docker.io hosts.toml.
        var etc = Sandbox.Folder("etc");
        var daemonJson = Path.Combine(etc, "docker", "daemon.json");
        Directory.CreateDirectory(Path.GetDirectoryName(daemonJson)!);
        File.WriteAllText(daemonJson, $$"""{"log-level": "warn", "registry-mirrors": ["http://stale.{{HostSuffix}}:{{port}}", "https://mirror.example"]}""");
        var dockerIoHosts = Path.Combine(etc, "containerd", "certs.d", "docker.io", "hosts.toml");
        Directory.CreateDirectory(Path.GetDirectoryName(dockerIoHosts)!);
        const string nodesOwnHosts = "# the node's own\nserver = \"https://registry-1.docker.io\"\n";
        File.WriteAllText(dockerIoHosts, nodesOwnHosts);
        var podmanDropIn = Path.Combine(etc, "containers", "registries.conf.d", "60-shadow-registry-change.conf");

        string[] common = ["-e", $"shadow_registry_etc={etc}", "-e", "change_id=q2", "-e", $"shadow_registry_change_host_suffix={HostSuffix}"];
        string[] start = [.. common, "-e", """{"change_ahead": ["q1"], "change_labels": {"project": "app", "change": 1234}, "change_ttl": "2h"}"""];

        var first = await Ansible().RunAsync(Local("change-start.yml", start));
        Assert.Contains("failed=0", first.StandardOutput);

        // The change exists with its queue and labels (values as strings).
        var change = (await client.GetFromJsonAsync<JsonObject>("api/v1/changes/q2"))!;
        Assert.Equal(["q1"], change["ahead"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Empty(change["skipped"]!.AsArray());
        Assert.Equal("app", change["labels"]!["project"]!.GetValue<string>());
        Assert.Equal("1234", change["labels"]!["change"]!.GetValue<string>());
        var expires = change["expiresAt"]!.GetValue<DateTimeOffset>() - change["createdAt"]!.GetValue<DateTimeOffset>();
        Assert.Equal(TimeSpan.FromHours(2), expires);

        // podman: a drop-in mirroring docker.io through the view (path form), the registry itself insecure.
        var registries = File.ReadAllText(podmanDropIn);
        Assert.Contains($"[[registry]]\nlocation = \"{address}\"\ninsecure = true", registries);
        Assert.Contains($"prefix = \"docker.io\"\nlocation = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \"{address}/changes/q2/docker.io\"\ninsecure = true", registries);

        // containerd: docker.io's hosts.toml points at the view with override_path; the node's own file is kept aside.
        var hosts = File.ReadAllText(dockerIoHosts);
        Assert.Contains("server = \"https://registry-1.docker.io\"", hosts);
        Assert.Contains($"[host.\"http://{address}/v2/changes/q2\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  override_path = true", hosts);
        Assert.Equal(nodesOwnHosts, File.ReadAllText(dockerIoHosts + ".before-change"));
        Assert.Contains($"server = \"http://{address}\"", File.ReadAllText(Path.Combine(etc, "containerd", "certs.d", address, "hosts.toml")));

        // Docker: the host form first among the mirrors, the stale change mirror gone, both hosts insecure.
        var daemon = JsonNode.Parse(File.ReadAllText(daemonJson))!;
        Assert.Equal("warn", daemon["log-level"]!.GetValue<string>());
        Assert.Equal([$"http://q2.{HostSuffix}:{port}", "https://mirror.example"], Strings(daemon["registry-mirrors"]));
        Assert.Equal([address, $"q2.{HostSuffix}:{port}"], Strings(daemon["insecure-registries"]));

        // A second run changes nothing: not the files, and not the change (same queue and labels).
        var second = await Ansible().RunAsync(Local("change-start.yml", start));
        Assert.Contains("changed=0", second.StandardOutput);
        Assert.Contains("failed=0", second.StandardOutput);
        Assert.Equal(nodesOwnHosts, File.ReadAllText(dockerIoHosts + ".before-change"));

        // The job pushes through the view (at podman's mirror path); the Docker host form sees it, the base does not.
        var (_, pushed) = await client.PushImageAsync("changes/q2/docker.io/library/app", "latest", seed: 7);
        Assert.Equal((pushed, "change/q2"), await client.GetManifestAsync("changes/q2/docker.io/library/app", "latest"));
        using (var byHost = new HttpRequestMessage(HttpMethod.Get, "v2/docker.io/library/app/manifests/latest"))
        {
            byHost.Headers.Host = $"q2.{HostSuffix}:{port}";
            byHost.Headers.Accept.ParseAdd(OciHttp.OciManifest);
            using var response = await client.SendAsync(byHost);
            await response.ExpectAsync(HttpStatusCode.OK);
            Assert.Equal(pushed, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
        using (var base1 = await client.GetAsync("v2/docker.io/library/app/manifests/latest")) await base1.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // "merged" with a wrong expectation: the play fails showing the mismatch, nothing is promoted or deleted; the
        // node's files are restored all the same.
        var conflict = await Ansible().TryRunAsync(Local("change-finish.yml",
            [.. common, "-e", "change_outcome=merged", "-e", $$$"""{"change_expect": {"docker.io/library/app:latest": "{{{pushed}}}"}}"""]));
        Assert.NotEqual(0, conflict.ExitCode);
        Assert.Contains("409 CHANGE_CONFLICT", conflict.StandardOutput);
        Assert.Contains($"docker.io/library/app:latest expected {pushed}, the base has none", conflict.StandardOutput);
        using (var base2 = await client.GetAsync("v2/docker.io/library/app/manifests/latest")) await base2.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");
        using (var stillThere = await client.GetAsync("api/v1/changes/q2")) await stillThere.ExpectAsync(HttpStatusCode.OK);
        AssertRestored();

        // "merged" with the right expectation (the tag must not exist in the base yet): promoted, then deleted.
        var merged = await Ansible().RunAsync(Local("change-finish.yml",
            [.. common, "-e", "change_outcome=merged", "-e", """{"change_expect": {"docker.io/library/app:latest": null}}"""]));
        Assert.Contains("failed=0", merged.StandardOutput);
        Assert.Contains($"docker.io/library/app:latest = {pushed} (was none)", merged.StandardOutput);
        Assert.Equal((pushed, "local"), await client.GetManifestAsync("docker.io/library/app", "latest"));
        using (var gone = await client.GetAsync("api/v1/changes/q2")) await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        AssertRestored();

        void AssertRestored()
        {
            Assert.False(File.Exists(podmanDropIn), "the podman drop-in of the change is still there");
            Assert.Equal(nodesOwnHosts, File.ReadAllText(dockerIoHosts));
            Assert.False(File.Exists(dockerIoHosts + ".before-change"), "the hosts.toml backup is still there");
            var restored = JsonNode.Parse(File.ReadAllText(daemonJson))!;
            Assert.Equal("warn", restored["log-level"]!.GetValue<string>());
            Assert.Equal(["https://mirror.example"], Strings(restored["registry-mirrors"]));
            Assert.Equal([address], Strings(restored["insecure-registries"]));
        }
    }

    [Fact]
    public async Task FinishAbandonedDeletesTheChangeAndToleratesOneAlreadyGone()
    {
        using var client = Server.CreateClient();
        await client.PutChangeAsync("dropped", HttpStatusCode.Created);
        await client.PushImageAsync("changes/dropped/app", "latest", seed: 9);
        string[] abandon = ["-e", "change_id=dropped", "-e", "change_outcome=abandoned", "-e", "shadow_registry_change_clients=false"];

        var first = await Ansible().RunAsync(Local("change-finish.yml", abandon));
        Assert.Contains("changed=1", first.StandardOutput);
        using (var gone = await client.GetAsync("api/v1/changes/dropped")) await gone.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        using (var view = await client.GetAsync("v2/changes/dropped/app/manifests/latest")) await view.ExpectErrorAsync(HttpStatusCode.NotFound, "NAME_UNKNOWN");
        using (var base1 = await client.GetAsync("v2/app/manifests/latest")) await base1.ExpectErrorAsync(HttpStatusCode.NotFound, "MANIFEST_UNKNOWN");

        // Already gone (deleted, or expired): still a success, and nothing changed.
        var again = await Ansible().RunAsync(Local("change-finish.yml", abandon));
        Assert.Contains("changed=0", again.StandardOutput);
        Assert.Contains("failed=0", again.StandardOutput);
    }

    private static string[] Strings(JsonNode? array) => array!.AsArray().Select(n => n!.GetValue<string>()).ToArray();

}
