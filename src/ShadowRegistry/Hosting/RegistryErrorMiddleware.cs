using ShadowRegistry.Api;

namespace ShadowRegistry.Hosting;

/// <summary>
/// Adds the API version header to every response and turns failures into OCI error bodies: client errors with
/// their own code and status, a body cut short with 400, a full disk with 507, and anything unexpected with a
/// logged 500.
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
        catch (Exception e) when (!context.Response.HasStarted && IsStorageFull(e))
        {
            // Not a fault of this request or of the registry: the storage layer has already rolled back what it
            // wrote, so the client may retry (an upload session resumes from the offset it was last told).
            logger.LogError("Storage is full during {Method} {Path}: {Reason}", context.Request.Method, context.Request.Path, e.Message);
            await new RegistryError(StatusCodes.Status507InsufficientStorage, "UNAVAILABLE", "registry storage is full; try again later").WriteAsync(context.Response);
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            logger.LogError(e, "Unhandled error for {Method} {Path}", context.Request.Method, context.Request.Path);
            await new RegistryError(500, "UNKNOWN", "internal server error").WriteAsync(context.Response);
        }
    }

    /// <summary>
    /// Out of space or over quota. .NET sets an IOException's HResult to the raw errno on Unix (ENOSPC 28, EDQUOT
    /// 122 on Linux, 69 on macOS) and to an HRESULT wrapping the Win32 error on Windows (ERROR_HANDLE_DISK_FULL 39,
    /// ERROR_DISK_FULL 112).
    /// </summary>
    public static bool IsStorageFull(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is not IOException) continue;
            var fullOnThisSystem = OperatingSystem.IsWindows()
                ? e.HResult is unchecked((int)0x80070027) or unchecked((int)0x80070070)
                : e.HResult == 28 || e.HResult == (OperatingSystem.IsLinux() ? 122 : 69);
            if (fullOnThisSystem) return true;
        }
        return false;
    }
}
