namespace ShadowRegistry.Api;

/// <summary>The n/last pagination shared by the tag list and the catalog, over an ordinally sorted list.</summary>
public static class Pagination
{
    /// <summary>The page after <c>last</c> of at most <c>n</c> entries; sets the Link header when more follow.</summary>
    public static List<string> Page(HttpContext context, List<string> sorted, int maxPageSize)
    {
        var query = context.Request.Query;
        int? n = null;
        if (query.TryGetValue("n", out var nValue))
        {
            if (!int.TryParse(nValue.ToString(), out var parsed) || parsed < 0)
                throw RegistryError.PaginationInvalid($"invalid page size n={nValue}");
            n = Math.Min(parsed, maxPageSize);
        }
        var last = query["last"].ToString();
        var start = 0;
        if (last.Length > 0)
        {
            var index = sorted.BinarySearch(last, StringComparer.Ordinal);
            start = index >= 0 ? index + 1 : ~index;
        }
        var count = Math.Min(n ?? maxPageSize, sorted.Count - start);
        var page = sorted.GetRange(start, Math.Max(0, count));
        if (page.Count > 0 && start + page.Count < sorted.Count)
        {
            // Other parameters (containerd's ns) stay, so the next page is of the same repository.
            var kept = query.Where(p => p.Key is not ("n" or "last")).SelectMany(p => p.Value.Select(v => $"&{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(v ?? "")}"));
            var next = $"{context.Request.Path}?n={n ?? maxPageSize}&last={Uri.EscapeDataString(page[^1])}{string.Concat(kept)}";
            context.Response.Headers.Link = $"<{next}>; rel=\"next\"";
        }
        return page;
    }
}
