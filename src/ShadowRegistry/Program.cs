using ShadowRegistry.Cli;

return await CommandLine.RunAsync(args);
