using ShadowRegistry.Domain;

namespace ShadowRegistry.Api;

/// <summary>The n/last pagination shared by the tag list and the catalog, over an ordinally sorted list.</summary>
public static class Pagination
{
    /// <summary>
    /// The page after <c>last</c> of at most <c>n</c> entries; sets the Link header when more follow. Costs a binary
    /// search and the page, whatever the length of <paramref name="sorted"/>.
    /// </summary>
    public static List<string> Page(HttpContext context, IReadOnlyList<string> sorted, int maxPageSize)
    {
        var query = context.Request.Query;
        int? n = null;
        if (query.TryGetValue("n", out var nValue))
        {
            if (!int.TryParse(nValue.ToString(), out var parsed) || parsed < 0)
                throw new PaginationInvalidException($"invalid page size n={nValue}");
            n = Math.Min(parsed, maxPageSize);
        }
        var last = query["last"].ToString();
        var start = last.Length > 0 ? After(sorted, last) : 0;
        var count = Math.Max(0, Math.Min(n ?? maxPageSize, sorted.Count - start));
        var page = new List<string>(count);
        for (var i = start; i < start + count; i++) page.Add(sorted[i]);
        if (page.Count > 0 && start + page.Count < sorted.Count)
        {
            // Other parameters (containerd's ns) stay, so the next page is of the same repository.
            var kept = query.Where(p => p.Key is not ("n" or "last")).SelectMany(p => p.Value.Select(v => $"&{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(v ?? "")}"));
            var next = $"{context.Request.Path}?n={n ?? maxPageSize}&last={Uri.EscapeDataString(page[^1])}{string.Concat(kept)}";
            context.Response.Headers.Link = $"<{next}>; rel=\"next\"";
        }
        return page;
    }

    /// <summary>Index of the first entry ordinally greater than <paramref name="last"/>.</summary>
    private static int After(IReadOnlyList<string> sorted, string last)
    {
        int low = 0, high = sorted.Count;
        while (low < high)
        {
            var middle = low + (high - low) / 2;
            if (string.CompareOrdinal(sorted[middle], last) <= 0) low = middle + 1;
            else high = middle;
        }
        return low;
    }
}
