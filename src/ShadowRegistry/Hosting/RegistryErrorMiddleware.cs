using ShadowRegistry.Api;
using ShadowRegistry.Domain;
using ShadowRegistry.Storage.Drivers;

namespace ShadowRegistry.Hosting;

/// <summary>
/// Adds the API version header to every response and turns failures into OCI error bodies: HTTP errors as they are,
/// domain exceptions through <see cref="RegistryErrorMapper"/>, a body cut short with 400, a full disk with 507, and
/// anything unexpected with a logged 500.
/// </summary>
public sealed class RegistryErrorMiddleware(RequestDelegate next, ILogger<RegistryErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        context.Response.Headers["Docker-Distribution-API-Version"] = "registry/2.0";
        context.Request.Body = new ClientBodyStream(context.Request.Body);
        try
        {
            await next(context);
        }
        catch (RegistryError error) when (!context.Response.HasStarted)
        {
            await error.WriteAsync(context.Response);
        }
        catch (RegistryException e) when (!context.Response.HasStarted && e is not StorageFullException && RegistryErrorMapper.TryMap(e) is { } error)
        {
            await error.WriteAsync(context.Response);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            // Kestrel's verdict on the body itself: shorter than Content-Length, or malformed framing.
            logger.LogWarning("Bad request body for {Path}: {Reason}", context.Request.Path, e.Message);
            await new RegistryError(e.StatusCode, "SIZE_INVALID", $"request body is invalid: {e.Message}").WriteAsync(context.Response);
        }
        catch (Exception e) when (context.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            logger.LogInformation("Client went away during {Method} {Path}", context.Request.Method, context.Request.Path);
        }
        catch (Exception e) when (!context.Response.HasStarted && StorageFullException.IsCause(e))
        {
            // Storage lets the file system's ENOSPC/EDQUOT IOException through as it is, so it is recognised here.
            // Not a fault of this request or of the registry: the storage layer has already rolled back what it
            // wrote, so the client may retry (an upload session resumes from the offset it was last told).
            logger.LogError("Storage is full during {Method} {Path}: {Reason}", context.Request.Method, context.Request.Path, e.Message);
            var full = e as StorageFullException ?? new StorageFullException(e);
            await RegistryErrorMapper.TryMap(full)!.WriteAsync(context.Response);
        }
        catch (StorageUnavailableException e) when (!context.Response.HasStarted)
        {
            // The object store failed or throttled past its client's retries: nothing is half-published (writers
            // commit whole or not at all), so the client retries, and an upload session resumes from its offset.
            logger.LogError("Storage unavailable during {Method} {Path}: {Reason}", context.Request.Method, context.Request.Path, e.Message);
            context.Response.Headers.RetryAfter = "1";
            await new RegistryError(503, "UNAVAILABLE", "storage is temporarily unavailable, retry").WriteAsync(context.Response);
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            logger.LogError(e, "Unhandled error for {Method} {Path}", context.Request.Method, context.Request.Path);
            await new RegistryError(500, "UNKNOWN", "internal server error").WriteAsync(context.Response);
        }
    }
}
