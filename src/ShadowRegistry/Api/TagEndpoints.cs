using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Repositories;
using ShadowRegistry.Storage;
using ShadowRegistry.Upstream;

namespace ShadowRegistry.Api;

/// <summary>Content discovery: tag lists (local merged with upstream) and the catalog (local repositories).</summary>
public sealed class TagEndpoints(
    RepositoryFactory repositories,
    RepositoryCatalog catalog,
    IOptions<RegistryOptions> options,
    IDiagnosticContext diagnostics)
{
    public async Task ListAsync(HttpContext context, RepositoryTarget target)
    {
        diagnostics.Set("Repository", target.Local.Value);
        var list = await repositories.For(target).ListTagsAsync(context.RequestAborted) ?? throw new NameUnknownException(target.Requested);
        diagnostics.Set("Source", list.Source);
        SourceHeader.Set(context.Response, list.Source, target);
        var page = Pagination.Page(context, list.Tags, options.Value.MaxPageSize);
        // The name as the client addressed it, view prefix included.
        await context.Response.WriteAsJsonAsync(new TagList(target.ViewPrefix + target.Requested.Value, page), ApiJson.Relaxed.TagList, cancellationToken: context.RequestAborted);
    }

    public async Task CatalogAsync(HttpContext context)
    {
        var page = Pagination.Page(context, await catalog.ListAsync(context.RequestAborted), options.Value.MaxPageSize);
        await context.Response.WriteAsJsonAsync(new RepositoryList(page), ApiJson.Relaxed.RepositoryList, cancellationToken: context.RequestAborted);
    }
}
