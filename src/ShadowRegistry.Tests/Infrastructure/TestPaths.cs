namespace ShadowRegistry.Tests.Infrastructure;

public static class TestPaths
{
    /// <summary>The checkout the tests run from: the folder above the test binaries that holds ShadowRegistry.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var directory = AppContext.BaseDirectory; directory is not null; directory = Path.GetDirectoryName(directory))
            if (File.Exists(Path.Combine(directory, "ShadowRegistry.sln"))) return directory;
        throw new InvalidOperationException("cannot find the repository root above " + AppContext.BaseDirectory);
    }
}
