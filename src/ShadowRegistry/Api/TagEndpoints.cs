using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Configuration;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage;

namespace ShadowRegistry.Api;

/// <summary>Content discovery: tag lists and the catalog.</summary>
public sealed class TagEndpoints(TagStore tags, RepositoryCatalog catalog, IOptions<RegistryOptions> options, IDiagnosticContext diagnostics)
{
    public Task ListAsync(HttpContext context, RepositoryName name)
    {
        diagnostics.Set("Repository", name.Value);
        if (!catalog.Exists(name)) throw RegistryError.NameUnknown(name);
        var page = Pagination.Page(context, tags.List(name), options.Value.MaxPageSize);
        return context.Response.WriteAsJsonAsync(new { name = name.Value, tags = page }, context.RequestAborted);
    }

    public Task CatalogAsync(HttpContext context)
    {
        var page = Pagination.Page(context, catalog.List(), options.Value.MaxPageSize);
        return context.Response.WriteAsJsonAsync(new { repositories = page }, context.RequestAborted);
    }
}
