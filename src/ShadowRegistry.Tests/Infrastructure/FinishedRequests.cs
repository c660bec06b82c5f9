using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// Requests the registry has finished with: its whole pipeline ran, error handling and clean-up included. A test
/// whose client broke a request off (hung up mid-body) has no response to wait for; it waits here for the server
/// to be done with the request instead of sleeping and hoping it was.
/// </summary>
public sealed class FinishedRequests
{
    private readonly Lock gate = new();
    private readonly List<(string Method, string Path, TaskCompletionSource Finished)> waiters = [];

    /// <summary>
    /// Completes when the server has finished a request for <paramref name="method"/> <paramref name="path"/> (the
    /// path without its query) that it finishes after this call: call it before sending the request.
    /// </summary>
    public Task NextAsync(HttpMethod method, string path)
    {
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (gate) waiters.Add((method.Method, path, finished));
        return finished.Task;
    }

    private void Finished(string method, string path)
    {
        lock (gate)
        {
            foreach (var waiter in waiters.Where(w => w.Method == method && w.Path == path).ToList())
            {
                waiters.Remove(waiter);
                waiter.Finished.SetResult();
            }
        }
    }

    /// <summary>Puts the bookkeeping around everything the registry's own pipeline does.</summary>
    internal sealed class StartupFilter(FinishedRequests log) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, following) =>
            {
                // Read before the pipeline runs: a branch may change the path while it handles the request.
                var (method, path) = (context.Request.Method, context.Request.Path.Value ?? "");
                try
                {
                    await following(context);
                }
                finally
                {
                    log.Finished(method, path);
                }
            });
            next(app);
        };
    }
}
