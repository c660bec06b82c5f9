namespace ShadowRegistry.Api;

public sealed class BaseEndpoints
{
    /// <summary>GET /v2/: tells clients this is a registry speaking the v2 API.</summary>
    public Task VersionCheck(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync("{}");
    }
}
