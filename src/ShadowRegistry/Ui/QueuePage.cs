using ShadowRegistry.Changes;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Ui;

public sealed partial class UiPages
{
    /// <summary>
    /// Every live change as a box, in queue order (a change after the changes it reads through), each showing the
    /// stack a job in it reads through, labels, age, expiry countdown, tags and unique bytes; filtered by labels.
    /// </summary>
    private async Task QueueAsync(HttpContext context, Viewer viewer)
    {
        var cancellationToken = context.RequestAborted;
        var filters = new Dictionary<string, string>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var value in context.Request.Query["label"])
        {
            if (string.IsNullOrWhiteSpace(value)) continue;
            var equals = value.IndexOf('=');
            if (equals <= 0) problems.Add($"'{value}' is not key=value");
            else filters[value[..equals].Trim()] = value[(equals + 1)..].Trim();
        }
        var all = await data.QueueAsync(filters, cancellationToken);
        var visible = all.Where(e => viewer.Sees($"{changeOptions.Value.PathPrefix}/{e.Change.Id}/x")).ToList();
        var size = options.Value.PageSize;
        var pages = Math.Max(1, (visible.Count + size - 1) / size);
        var page = Math.Min(PageNumber(context), pages);
        var shown = visible.Skip((page - 1) * size).Take(size).ToList();
        var live = await data.LiveAsync(cancellationToken);
        var rows = new List<(QueueEntry Entry, IReadOnlyList<ChangeTag> Tags)>();
        foreach (var entry in shown) rows.Add((entry, await data.TagsAsync(entry.Change, live, cancellationToken)));
        var now = time.GetUtcNow();
        var filterText = string.Join(' ', filters.Select(f => $"{f.Key}={f.Value}"));

        await PageAsync(context, 200, "Gate queue", viewer, h =>
        {
            if (ChangeId.TryParse(context.Request.Query["deleted"].ToString(), out var deleted))
                h.Add($"<p class=\"notice\" role=\"status\">Deleted change {deleted}.</p>");
            foreach (var problem in problems) h.Add($"<p class=\"error\">Label filter {problem}.</p>");
            h.Add($"""
                <form class="filter" method="get" action="{Base}/" role="search">
                <label for="label">Filter by label</label>
                <input id="label" name="label" value="{filterText}" placeholder="project=app">
                <button type="submit">Filter</button>
                """);
            if (filters.Count > 0) h.Add($" <a href=\"{Base}/\">Show all</a>");
            h.Add($"</form>\n<p class=\"summary\">{visible.Count} live change{(visible.Count == 1 ? "" : "s")}");
            if (pages > 1) h.Add($", page {page} of {pages}");
            h.Add($". Each box is the stack a job in that change reads through: its own overlay, the changes ahead of it (nearest first), then the base.</p>\n");
            if (rows.Count == 0) h.Add($"<p class=\"empty\">No live changes{(filters.Count > 0 ? " with these labels" : "")}.</p>\n");
            h.Add($"<ol class=\"queue\">\n");
            foreach (var (entry, tags) in rows)
            {
                var change = entry.Change;
                h.Add($"""
                    <li class="change" id="change-{change.Id}" data-change="{change.Id}">
                    <h2 class="change-id"><a href="{Base}/changes/{change.Id}">{change.Id}</a></h2>
                    """);
                if (change.Labels.Count > 0)
                {
                    h.Add($"<ul class=\"labels\" aria-label=\"Labels of {change.Id}\">");
                    foreach (var (key, value) in change.Labels.OrderBy(l => l.Key, StringComparer.Ordinal))
                        h.Add($"<li><a class=\"label\" href=\"{Base}/?label={Q(key + "=" + value)}\">{key}={value}</a></li>");
                    h.Add($"</ul>\n");
                }
                h.Add($"<ol class=\"stack\" aria-label=\"{change.Id} reads through\">");
                for (var i = 0; i < entry.Stack.Count; i++)
                {
                    var layer = entry.Stack[i];
                    h.Add($"<li class=\"{(i == 0 ? "own" : "ahead")}\"><a href=\"{Base}/changes/{layer}\">{layer}</a></li>");
                }
                h.Add($"<li class=\"base\">base</li></ol>\n");
                if (entry.Skipped.Count > 0)
                    h.Add($"<p class=\"skipped\">Skips {string.Join(", ", entry.Skipped.Select(s => s.Id))} (deleted or expired).</p>\n");
                h.Add($"""
                    <dl class="facts">
                    <div><dt>Age</dt><dd>{Span(now - change.CreatedAt)}</dd></div>
                    <div><dt>Expires</dt><dd>{Expiry(change.ExpiresAt)}</dd></div>
                    <div><dt>Tags</dt><dd class="tag-count">{tags.Count}</dd></div>
                    <div><dt>Unique</dt><dd class="unique">{Bytes(tags.Sum(t => t.UniqueBytes))}</dd></div>
                    </dl>
                    </li>
                    """);
            }
            h.Add($"</ol>\n");
            Pager(h, pages, page, p => $"{Base}/?{string.Join('&', filters.Select(f => "label=" + Q(f.Key + "=" + f.Value)).Append("page=" + p))}");
        }, "Queue");
    }

    private static void Pager(Html h, int pages, int page, Func<int, string> link)
    {
        if (pages <= 1) return;
        h.Add($"<nav class=\"pager\" aria-label=\"Pages\">");
        if (page > 1) h.Add($"<a rel=\"prev\" href=\"{link(page - 1)}\">Previous</a> ");
        h.Add($"<span>Page {page} of {pages}</span>");
        if (page < pages) h.Add($" <a rel=\"next\" href=\"{link(page + 1)}\">Next</a>");
        h.Add($"</nav>\n");
    }
}
