using ShadowRegistry.Auth;
using ShadowRegistry.Hosting;

namespace ShadowRegistry.Cli;

/// <summary>The command line: <c>serve</c> (the default) runs the registry; options are configuration keys.</summary>
public static class CommandLine
{
    public const string Usage = """
        Usage: ShadowRegistry [serve] [options]
               ShadowRegistry hash-password [--iterations N]   (password on stdin; prints the hash for Auth:Users)
               ShadowRegistry changes create|list|show|delete|promote --url <registry url> ...
                                                             (speculative changes; 'changes --help' for more)
               ShadowRegistry sync|check <source> <destination> [options]
                                                             (replicate by exact tag/digest state; 'sync --help')
               ShadowRegistry gc [--dry-run] [options]         (one garbage collection of the store these options
                                                                describe, online; 'gc --help')
               ShadowRegistry healthcheck [options]            (exit 0 when the registry these options describe
                                                                answers GET /healthz with 200, else 1)

        Runs the registry. With no options it stores data under ./data and listens on http://127.0.0.1:5000.

        Options:
          --data <folder>          storage root (Registry:StorageRoot)
          --listen <url>           listen address(es), ';'-separated (urls)
          --log-format text|json   console log format (Registry:LogFormat)
          --metrics-listen <url>   serve /metrics only there, not on --listen (Registry:Metrics:Listen)
          --<Section>:<Key> <v>    any configuration key, e.g. --Registry:MaxManifestBytes 8388608
          -h, --help               this text
        Configuration is also read from appsettings.json beside the binary and from environment variables
        (e.g. Registry__StorageRoot=/var/lib/shadow-registry).
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 0 && args[0] == "hash-password") return HashPasswordCommand.Run(args[1..]);
        if (args.Length > 0 && args[0] == "changes") return await ChangesCommand.RunAsync(args[1..]);
        if (args.Length > 0 && args[0] is "sync" or "check")
        {
            using var interrupted = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                interrupted.Cancel();
            };
            return await SyncCommand.RunAsync(args[1..], args[0] == "sync", Console.Out, Console.Error, Environment.GetEnvironmentVariable, interrupted.Token,
                terminal: !Console.IsErrorRedirected);
        }
        if (args.Length > 0 && args[0] == "gc") return await GcCommand.RunAsync(args[1..], Console.Out, Console.Error, CancellationToken.None);
        if (args.Length > 0 && args[0] == "healthcheck") return await HealthCheckCommand.RunAsync(args[1..], Console.Error);
        if (args.Any(a => a is "-h" or "--help" or "help"))
        {
            Console.WriteLine(Usage);
            return 0;
        }
        if (args.Length > 0 && !args[0].StartsWith('-'))
        {
            if (args[0] != "serve")
            {
                Console.Error.WriteLine($"unknown command '{args[0]}'\n\n{Usage}");
                return 2;
            }
            args = args[1..];
        }
        var app = RegistryApp.Build(args);
        await app.RunAsync();
        return 0;
    }
}
