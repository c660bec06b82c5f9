using ShadowRegistry.Changes;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Ui;

public sealed partial class UiPages
{
    /// <summary>A change: its stack, its tags, what a typed name resolves to through its view, client configuration, and actions.</summary>
    private async Task ChangeAsync(HttpContext context, Viewer viewer, ChangeId id, Action<Html>? result, int status = 200)
    {
        var cancellationToken = context.RequestAborted;
        var prefix = changeOptions.Value.PathPrefix;
        if (!viewer.Sees($"{prefix}/{id}/x")) throw new ChangeUnknownException(id);
        var change = await data.ChangeAsync(id, cancellationToken);
        var view = await data.ViewAsync(id, cancellationToken);
        var rows = await data.ChangeTagsAsync(change, cancellationToken);
        var typed = context.Request.Query["name"].ToString();
        var resolution = typed.Length > 0 && HttpMethods.IsGet(context.Request.Method) ? await data.ResolveAsync(id, typed, cancellationToken) : null;
        var acts = viewer.ActsOn(id.Value, prefix);
        var token = acts ? Token(context) : "";
        var now = time.GetUtcNow();

        await PageAsync(context, status, $"Change {id}", viewer, h =>
        {
            result?.Invoke(h);
            h.Add($"""
                <dl class="facts wide">
                <div><dt>Created</dt><dd>{Time(change.CreatedAt)} ({Span(now - change.CreatedAt)} ago)</dd></div>
                <div><dt>Expires</dt><dd>{Expiry(change.ExpiresAt)}</dd></div>
                <div><dt>View</dt><dd><code>/v2/{prefix}/{id}/</code></dd></div>
                </dl>
                """);
            if (change.Labels.Count > 0)
            {
                h.Add($"<ul class=\"labels\" aria-label=\"Labels\">");
                foreach (var (key, value) in change.Labels.OrderBy(l => l.Key, StringComparer.Ordinal))
                    h.Add($"<li><a class=\"label\" href=\"{Base}/?label={Q(key + "=" + value)}\">{key}={value}</a></li>");
                h.Add($"</ul>\n");
            }
            h.Add($"<h2>Reads through</h2>\n<ol class=\"stack\" aria-label=\"Reads through\">");
            foreach (var layer in view.Layers)
                h.Add($"<li class=\"{(layer.Id == id.Value ? "own" : "ahead")}\"><a href=\"{Base}/changes/{layer.Id}\">{layer.Id}</a></li>");
            h.Add($"<li class=\"base\">base</li><li class=\"base\">upstreams</li></ol>\n");
            foreach (var skipped in view.Skipped) h.Add($"<p class=\"skipped\">Skips {skipped.Id}: {skipped.Reason}.</p>\n");

            h.Add($"<h2>Tags</h2>\n");
            if (rows.Count == 0) h.Add($"<p class=\"empty\">Nothing pushed through this change yet.</p>\n");
            else
            {
                h.Add($"""
                    <table class="tags"><caption>Tags pushed through {id}</caption>
                    <thead><tr><th scope="col">Repository</th><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col">Size</th><th scope="col">Unique</th><th scope="col">Pushed</th></tr></thead>
                    <tbody>
                    """);
                foreach (var row in rows)
                {
                    var tag = row.Tag;
                    h.Add($"""
                        <tr><td>{tag.Repository}</td><td><a href="{Base}/manifest?change={id}&amp;name={Q(tag.Repository)}&amp;ref={Q(tag.Tag)}">{tag.Tag}</a></td>
                        <td><code title="{tag.Digest}">{Short(tag.Digest)}</code></td><td>{Bytes(row.Size)}</td><td>{Bytes(tag.UniqueBytes)}</td>
                        <td>{(row.PushedAt is { } at ? Time(at) : new Markup("unknown"))}</td></tr>
                        """);
                }
                h.Add($"</tbody></table>\n");
            }

            h.Add($"""
                <h2 id="resolve">Resolve a name</h2>
                <form class="resolve" method="get" action="{Base}/changes/{id}#resolve">
                <label for="name">Image reference, as a job in {id} pulls it</label>
                <input id="name" name="name" value="{typed}" placeholder="docker.io/library/app:latest" required>
                <button type="submit">Resolve</button>
                </form>
                """);
            if (resolution is { } r)
            {
                if (r.Error is not null) h.Add($"<p class=\"resolution error\" role=\"status\">{r.Repository}:{r.Reference}: {r.Error}</p>\n");
                else
                {
                    h.Add($"""
                        <div class="resolution" role="status">
                        <dl class="facts wide">
                        <div><dt>Name</dt><dd>{r.Repository}:{r.Reference}</dd></div>
                        <div><dt>Answered by</dt><dd class="layer"><strong>{r.Layer}</strong> ({LayerMeaning(r.Layer, id.Value)})</dd></div>
                        <div><dt>Digest</dt><dd><a href="{Base}/manifest?change={id}&amp;name={Q(r.Repository)}&amp;ref={Q(r.Digest!)}"><code>{r.Digest}</code></a></dd></div>
                        <div><dt>Type</dt><dd>{r.MediaType} ({Bytes(r.Size)})</dd></div>
                        </dl>
                        </div>
                        """);
                }
            }

            ClientConfiguration(h, context, id);

            if (acts) Actions(h, id, rows, token);
            else if (AuthOn) h.Add($"<p class=\"hint\">Promoting or deleting this change needs the write role on its repositories.</p>\n");
        });
    }

    private static string LayerMeaning(string? layer, string id) => layer switch
    {
        null => "",
        "local" => "the base namespace",
        _ when layer == $"change/{id}" => "this change's own overlay",
        _ when layer.StartsWith("change/", StringComparison.Ordinal) => "a change ahead",
        _ when layer.StartsWith("upstream/", StringComparison.Ordinal) => "an upstream registry",
        _ => "",
    };

    /// <summary>The client settings of README "Gating with speculative changes", for this change and this registry's address.</summary>
    private void ClientConfiguration(Html h, HttpContext context, ChangeId id)
    {
        var prefix = changeOptions.Value.PathPrefix;
        var host = context.Request.Host.Value ?? "registry.example:5000";
        var scheme = context.Request.IsHttps ? "https" : "http";
        var insecure = !context.Request.IsHttps;
        var upstreams = shadowOptions.Value.Upstreams.OrderByDescending(u => u.Value.Default).ThenBy(u => u.Key, StringComparer.Ordinal).ToList();
        h.Add($"<h2>Client configuration</h2>\n<p>Point a job's container tools at this change's view (the settings the end-to-end tests prove).</p>\n");
        var podman = new System.Text.StringBuilder("# /etc/containers/registries.conf.d/50-shadow-change.conf\n");
        var containerd = new System.Text.StringBuilder();
        foreach (var (name, upstream) in upstreams)
        {
            podman.Append($"[[registry]]\nprefix = \"{name}\"\nlocation = \"{name}\"\n[[registry.mirror]]\nlocation = \"{host}/{prefix}/{id}/{name}\"\n{(insecure ? "insecure = true\n" : "")}");
            containerd.Append($"# /etc/containerd/certs.d/{name}/hosts.toml\nserver = \"{upstream.Url}\"\n[host.\"{scheme}://{host}/v2/{prefix}/{id}\"]\n" +
                "  capabilities = [\"pull\", \"resolve\", \"push\"]\n  override_path = true\n");
        }
        var sample = upstreams.Count > 0 ? $"{upstreams[0].Key}/library/app:latest" : "app:latest";
        var push = $"{host}/{prefix}/{id}/{sample}";
        if (upstreams.Count == 0)
        {
            podman.Append($"# No upstream is configured: pull and push through the view by name, e.g.\n#   podman pull {(insecure ? "--tls-verify=false " : "")}{push}\n");
            containerd.Append($"# No upstream is configured: name the view directly, e.g.\n#   ctr images pull {(insecure ? "--plain-http " : "")}{push}\n");
        }
        podman.Append($"# Mirrors serve pulls only; push by name:\n#   podman push {(insecure ? "--tls-verify=false " : "")}app {push}\n");
        Snippet(h, "podman, buildah, skopeo, cri-o: registries.conf", "podman", podman.ToString());
        Snippet(h, "containerd: hosts.toml (ctr --hosts-dir /etc/containerd/certs.d)", "containerd", containerd.ToString());
        if (changeOptions.Value.HostSuffix is { Length: > 0 } suffix)
        {
            var port = context.Request.Host.Port is { } p ? $":{p}" : "";
            var viewHost = $"{id}.{suffix}{port}";
            var docker = $"# /etc/docker/daemon.json, then: systemctl reload docker\n{{\n  \"registry-mirrors\": [\"{scheme}://{viewHost}\"]" +
                (insecure ? $",\n  \"insecure-registries\": [\"{viewHost}\"]" : "") + $"\n}}\n# push by the view's host: docker push {viewHost}/library/app:latest\n";
            Snippet(h, "Docker: daemon.json", "docker", docker);
        }
        else
        {
            h.Add($"<p class=\"hint\">Docker's mirrors cannot carry a path: set <code>Changes:HostSuffix</code> to use this change from Docker (host form <code>{id}.&lt;suffix&gt;</code>).</p>\n");
        }
    }

    private static void Snippet(Html h, string title, string key, string text) => h.Add($"""
        <figure class="snippet"><figcaption>{title} <button type="button" class="copy" data-copy="snippet-{key}" hidden>Copy</button></figcaption>
        <pre id="snippet-{key}" tabindex="0">{text}</pre></figure>
        """);

    /// <summary>Promote (with the base's current digests as the expectation, editable) and delete, for users who may act.</summary>
    private void Actions(Html h, ChangeId id, IReadOnlyList<ChangeTagRow> rows, string token)
    {
        h.Add($"<h2>Actions</h2>\n");
        if (rows.Count > 0)
        {
            h.Add($"""
                <form class="promote" method="post" action="{Base}/changes/{id}/promote">
                <input type="hidden" name="_csrf" value="{token}">
                <table><caption>Promote into the base</caption>
                <thead><tr><th scope="col">Promote</th><th scope="col">Base tag</th><th scope="col">Expected base digest now</th></tr></thead>
                <tbody>
                """);
            for (var i = 0; i < rows.Count; i++)
            {
                var tag = rows[i].Tag;
                var key = $"{tag.Repository}:{tag.Tag}";
                h.Add($"""
                    <tr><td><input type="checkbox" id="pt{i}" name="t{i}" value="{key}" checked></td><td><label for="pt{i}">{key}</label></td>
                    <td><input id="pe{i}" name="e{i}" value="{rows[i].BaseDigest ?? "none"}" aria-label="Expected base digest of {key}" size="30"></td></tr>
                    """);
            }
            h.Add($"""
                </tbody></table>
                <p class="hint">The promotion is refused, changing nothing, when a base tag does not hold the digest expected
                (<code>none</code>: the base must not have the tag; empty: no check). Only metadata is written, no blob is copied.</p>
                <p><button type="submit" class="primary">Promote</button></p>
                </form>
                """);
        }
        h.Add($"""
            <details class="danger"><summary>Delete this change…</summary>
            <form method="post" action="{Base}/changes/{id}/delete"><input type="hidden" name="_csrf" value="{token}">
            <p>Its tags disappear from its view and from the changes behind it, which skip it from now on.</p>
            <button type="submit" class="danger">Delete change {id}</button></form>
            </details>
            """);
    }

    private async Task PromoteAsync(HttpContext context, Viewer viewer, ChangeId id)
    {
        if (!viewer.ActsOn(id.Value, changeOptions.Value.PathPrefix))
        {
            await PageAsync(context, 403, "Not allowed", viewer, h => h.Add($"<p>Promoting {id} needs the write role on its repositories.</p>"));
            return;
        }
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var selection = new List<(string Repository, string Tag)>();
        var expect = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var i = 0; i < 10_000 && (form.ContainsKey($"t{i}") || form.ContainsKey($"e{i}")); i++)
        {
            var key = form[$"t{i}"].ToString();
            if (key.Length == 0) continue;
            var (repository, tag) = ChangeService.ParseTagReference(key);
            selection.Add((repository.Value, tag));
            var expected = form[$"e{i}"].ToString().Trim();
            if (expected.Length > 0) expect[key] = expected == "none" ? null : expected;
        }
        if (selection.Count == 0)
        {
            await ChangeAsync(context, viewer, id, h => h.Add($"<p class=\"error\" role=\"alert\">Choose at least one tag to promote.</p>"), 400);
            return;
        }
        try
        {
            var promoted = await changes.PromoteAsync(id, selection, expect, context.RequestAborted);
            logger.LogInformation("{User} promoted change {ChangeId} from the operator page", viewer.User?.Name ?? "(anonymous)", id);
            await ChangeAsync(context, viewer, id, h =>
            {
                h.Add($"""
                    <section class="notice" role="status" aria-label="Promotion result"><p>Promoted {promoted.Count} tag{(promoted.Count == 1 ? "" : "s")} into the base.</p>
                    <table><caption>Promoted</caption><thead><tr><th scope="col">Base tag</th><th scope="col">Now</th><th scope="col">Before</th></tr></thead><tbody>
                    """);
                foreach (var p in promoted)
                    h.Add($"<tr><td>{p.Repository}:{p.Tag}</td><td><code title=\"{p.Digest}\">{Short(p.Digest)}</code></td><td>{(p.Changed ? Short(p.Previous) : "unchanged")}</td></tr>");
                h.Add($"</tbody></table></section>\n");
            });
        }
        catch (PromotionConflictException conflict)
        {
            await ChangeAsync(context, viewer, id, h =>
            {
                h.Add($"""
                    <section class="error" role="alert" aria-label="Promotion refused"><p>Promotion refused, nothing changed: the base moved.</p>
                    <table><caption>Not as expected</caption><thead><tr><th scope="col">Base tag</th><th scope="col">Expected</th><th scope="col">Actual</th></tr></thead><tbody>
                    """);
                foreach (var m in conflict.Mismatches)
                    h.Add($"<tr><td>{m.Repository}:{m.Tag}</td><td><code>{m.Expected ?? "none"}</code></td><td><code>{m.Actual ?? "none"}</code></td></tr>");
                h.Add($"</tbody></table></section>\n");
            }, 409);
        }
    }

    private async Task DeleteAsync(HttpContext context, Viewer viewer, ChangeId id)
    {
        if (!viewer.ActsOn(id.Value, changeOptions.Value.PathPrefix))
        {
            await PageAsync(context, 403, "Not allowed", viewer, h => h.Add($"<p>Deleting {id} needs the write role on its repositories.</p>"));
            return;
        }
        await changes.DeleteAsync(id, context.RequestAborted);
        logger.LogInformation("{User} deleted change {ChangeId} from the operator page", viewer.User?.Name ?? "(anonymous)", id);
        context.Response.Redirect($"{Base}/?deleted={Q(id.Value)}");
    }
}
