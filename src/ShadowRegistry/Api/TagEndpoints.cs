using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>Content discovery: tag lists (local merged with upstream) and the catalog (local repositories).</summary>
public sealed class TagEndpoints(
    TagStore tags,
    RepositoryCatalog catalog,
    UpstreamClient upstream,
    IOptions<RegistryOptions> options,
    IDiagnosticContext diagnostics,
    ILogger<TagEndpoints> logger)
{
    public async Task ListAsync(HttpContext context, RepositoryName requested, RepositoryTarget target)
    {
        diagnostics.Set("Repository", target.Local.Value);
        var localExists = await catalog.ExistsAsync(target.Local, context.RequestAborted);
        var merged = localExists ? await tags.ListAsync(target.Local, context.RequestAborted) : [];
        var source = "local";
        if (target.Upstream is { } upstreamRepository)
        {
            try
            {
                var remote = await upstream.GetTagsAsync(upstreamRepository, context.RequestAborted);
                if (remote is not null)
                {
                    merged = merged.Union(remote).Order(StringComparer.Ordinal).ToList();
                    source = localExists ? "local+upstream" : "upstream";
                }
                else if (!localExists)
                {
                    throw new NameUnknownException(requested);
                }
            }
            catch (UpstreamUnavailableException e) when (localExists)
            {
                // The upstream being down must not hide what was pushed here.
                logger.LogWarning("Tag list of {Repository} served without upstream tags: {Reason}", target.Local, e.Message);
            }
        }
        else if (!localExists)
        {
            throw new NameUnknownException(requested);
        }
        diagnostics.Set("Source", source);
        var page = Pagination.Page(context, merged, options.Value.MaxPageSize);
        await context.Response.WriteAsJsonAsync(new { name = requested.Value, tags = page }, context.RequestAborted);
    }

    public async Task CatalogAsync(HttpContext context)
    {
        var page = Pagination.Page(context, await catalog.ListAsync(context.RequestAborted), options.Value.MaxPageSize);
        await context.Response.WriteAsJsonAsync(new { repositories = page }, context.RequestAborted);
    }
}
