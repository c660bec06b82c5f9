using ShadowRegistry.Domain;

namespace ShadowRegistry.Ui;

public sealed partial class UiPages
{
    /// <summary>Base repositories, searchable, a page at a time (the catalog is an in-memory sorted index).</summary>
    private async Task RepositoriesAsync(HttpContext context, Viewer viewer)
    {
        var search = context.Request.Query["q"].ToString().Trim();
        var after = context.Request.Query["after"].ToString();
        var (page, more) = await data.RepositoriesAsync(search, after.Length > 0 ? after : null, options.Value.PageSize, viewer.Sees, context.RequestAborted);
        await PageAsync(context, 200, "Repositories", viewer, h =>
        {
            h.Add($"""
                <form class="filter" method="get" action="{Base}/repositories" role="search">
                <label for="q">Search repositories</label>
                <input id="q" name="q" value="{search}" placeholder="library/app">
                <button type="submit">Search</button>
                </form>
                """);
            if (page.Count == 0) h.Add($"<p class=\"empty\">No repositories{(search.Length > 0 ? " match" : "")}.</p>\n");
            else
            {
                h.Add($"<ul class=\"repositories\">\n");
                foreach (var name in page) h.Add($"<li><a href=\"{Base}/repository?name={Q(name)}\">{name}</a></li>\n");
                h.Add($"</ul>\n");
            }
            if (more || after.Length > 0)
            {
                h.Add($"<nav class=\"pager\" aria-label=\"Pages\">");
                if (after.Length > 0) h.Add($"<a href=\"{Base}/repositories?q={Q(search)}\">First page</a> ");
                if (more) h.Add($"<a rel=\"next\" href=\"{Base}/repositories?q={Q(search)}&amp;after={Q(page[^1])}\">Next</a>");
                h.Add($"</nav>\n");
            }
        }, "Repositories");
    }

    /// <summary>A base repository's tags, a page at a time, with digests, push times and pull commands.</summary>
    private async Task RepositoryAsync(HttpContext context, Viewer viewer)
    {
        var name = context.Request.Query["name"].ToString();
        if (!RepositoryName.TryParse(name, out var repository) || !viewer.Sees(name)) throw new NameInvalidException(name);
        var after = context.Request.Query["after"].ToString();
        var (rows, more) = await data.TagPageAsync(repository, after.Length > 0 ? after : null, options.Value.PageSize, context.RequestAborted);
        var host = context.Request.Host.Value ?? "registry.example:5000";
        await PageAsync(context, 200, name, viewer, h =>
        {
            h.Add($"<p><a href=\"{Base}/repositories\">All repositories</a></p>\n");
            if (rows.Count == 0) h.Add($"<p class=\"empty\">No tags{(after.Length > 0 ? " after " + after : "")}.</p>\n");
            else
            {
                h.Add($"""
                    <table class="tags"><caption>Tags of {name}</caption>
                    <thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col">Pushed</th></tr></thead><tbody>
                    """);
                foreach (var (tag, digest, pushedAt) in rows)
                {
                    h.Add($"""
                        <tr><td><a href="{Base}/manifest?name={Q(name)}&amp;ref={Q(tag)}">{tag}</a></td><td><code title="{digest}">{Short(digest)}</code></td>
                        <td>{(pushedAt is { } at ? Time(at) : new Markup("unknown"))}</td></tr>
                        """);
                }
                h.Add($"</tbody></table>\n");
            }
            if (more) h.Add($"<nav class=\"pager\" aria-label=\"Pages\"><a rel=\"next\" href=\"{Base}/repository?name={Q(name)}&amp;after={Q(rows[^1].Tag)}\">Next</a></nav>\n");
            Snippet(h, "Pull", "pull", PullCommands(host, name, rows.Count > 0 ? ":" + rows[0].Tag : ":latest", context.Request.IsHttps));
        }, "Repositories");
    }

    private static string PullCommands(string host, string name, string reference, bool https) =>
        $"podman pull {(https ? "" : "--tls-verify=false ")}{host}/{name}{reference}\n" +
        $"skopeo inspect {(https ? "" : "--tls-verify=false ")}docker://{host}/{name}{reference}\n" +
        $"docker pull {host}/{name}{reference}\n";

    /// <summary>A manifest, read as a client would (through a change when given): layers, config, platforms, referrers, pull commands.</summary>
    private async Task ManifestAsync(HttpContext context, Viewer viewer)
    {
        var name = context.Request.Query["name"].ToString();
        var reference = context.Request.Query["ref"].ToString();
        var changeText = context.Request.Query["change"].ToString();
        ChangeId? change = null;
        if (changeText.Length > 0) change = ChangeId.TryParse(changeText, out var parsed) ? parsed : throw new ChangeInvalidException($"'{changeText}' is not a change id");
        var prefix = changeOptions.Value.PathPrefix;
        var seenAs = change is null ? name : $"{prefix}/{change}/{name}";
        if (!RepositoryName.TryParse(name, out _) || !viewer.Sees(seenAs)) throw new NameInvalidException(name);
        if (reference.Length == 0) reference = "latest";
        var detail = await data.ManifestAsync(change, name, reference, context.RequestAborted) ?? throw new ManifestUnknownException(reference);
        var host = context.Request.Host.Value ?? "registry.example:5000";
        string Link(string digest) => $"{Base}/manifest?{(change is null ? "" : $"change={change}&")}name={Q(name)}&ref={Q(digest)}";

        await PageAsync(context, 200, $"{name}{(reference.Contains(':') ? "@" : ":")}{reference}", viewer, h =>
        {
            if (change is not null) h.Add($"<p>Read through change <a href=\"{Base}/changes/{change}\">{change}</a>.</p>\n");
            else h.Add($"<p><a href=\"{Base}/repository?name={Q(name)}\">All tags of {name}</a></p>\n");
            h.Add($"""
                <dl class="facts wide">
                <div><dt>Digest</dt><dd><code>{detail.Digest}</code></dd></div>
                <div><dt>Type</dt><dd>{detail.MediaType}</dd></div>
                <div><dt>Size</dt><dd>{Bytes(detail.Size)} manifest{(detail.Layers.Count > 0 ? ", " + Bytes(detail.Layers.Sum(l => l.Size) + (detail.Config?.Size ?? 0)) + " content" : "")}</dd></div>
                <div><dt>Answered by</dt><dd>{detail.Layer}</dd></div>
                """);
            foreach (var (key, value) in detail.ConfigFacts) h.Add($"<div><dt>{key}</dt><dd>{value}</dd></div>\n");
            h.Add($"</dl>\n");
            if (detail.Config is { } config)
                h.Add($"<h2>Config</h2>\n<p><code>{config.Digest}</code>, {config.MediaType}, {Bytes(config.Size)}</p>\n");
            if (detail.Layers.Count > 0)
            {
                h.Add($"""
                    <table class="layers"><caption>Layers</caption><thead><tr><th scope="col">#</th><th scope="col">Digest</th><th scope="col">Type</th><th scope="col">Size</th></tr></thead><tbody>
                    """);
                for (var i = 0; i < detail.Layers.Count; i++)
                {
                    var layer = detail.Layers[i];
                    h.Add($"<tr><td>{i + 1}</td><td><code title=\"{layer.Digest}\">{Short(layer.Digest)}</code></td><td>{layer.MediaType}</td><td>{Bytes(layer.Size)}</td></tr>\n");
                }
                h.Add($"</tbody></table>\n");
            }
            if (detail.Manifests.Count > 0)
            {
                h.Add($"""
                    <table class="platforms"><caption>Platforms</caption><thead><tr><th scope="col">Platform</th><th scope="col">Manifest</th><th scope="col">Size</th></tr></thead><tbody>
                    """);
                foreach (var entry in detail.Manifests)
                    h.Add($"<tr><td>{entry.Platform ?? entry.ArtifactType ?? "unknown"}</td><td><a href=\"{Link(entry.Digest)}\"><code>{Short(entry.Digest)}</code></a></td><td>{Bytes(entry.Size)}</td></tr>\n");
                h.Add($"</tbody></table>\n");
            }
            h.Add($"<h2>Referrers</h2>\n");
            if (detail.Referrers.Count == 0) h.Add($"<p class=\"empty\">No signatures, SBOMs or other artifacts refer to this manifest.</p>\n");
            else
            {
                h.Add($"""
                    <table class="referrers"><caption>Referrers</caption><thead><tr><th scope="col">Artifact type</th><th scope="col">Manifest</th><th scope="col">Size</th></tr></thead><tbody>
                    """);
                foreach (var referrer in detail.Referrers)
                    h.Add($"<tr><td>{referrer.ArtifactType ?? referrer.MediaType}</td><td><a href=\"{Link(referrer.Digest)}\"><code>{Short(referrer.Digest)}</code></a></td><td>{Bytes(referrer.Size)}</td></tr>\n");
                h.Add($"</tbody></table>\n");
            }
            if (detail.Annotations.Count > 0)
            {
                h.Add($"<h2>Annotations</h2>\n<dl class=\"facts wide\">");
                foreach (var (key, value) in detail.Annotations) h.Add($"<div><dt>{key}</dt><dd>{value}</dd></div>");
                h.Add($"</dl>\n");
            }
            Snippet(h, "Pull", "pull", PullCommands(host, seenAs, "@" + detail.Digest, context.Request.IsHttps));
        }, change is null ? "Repositories" : "Queue");
    }
}
