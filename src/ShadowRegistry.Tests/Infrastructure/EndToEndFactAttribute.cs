namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// An end-to-end test that needs external programs (and, with <c>root: true</c>, root, for the daemons it starts).
/// Skipped, saying what is missing, where they are not available; never skipped under CI=true, where the test then
/// fails saying why (<see cref="ExternalTool.Require"/>, <see cref="ContainerDaemon"/>).
/// </summary>
public sealed class EndToEndFactAttribute : FactAttribute
{
    public EndToEndFactAttribute(bool root, params string[] tools)
    {
        if (Environment.GetEnvironmentVariable("CI") == "true") return;
        var reasons = new List<string>();
        if (root && !Environment.IsPrivilegedProcess) reasons.Add($"it starts container daemons, which must run as root, and the tests run as '{Environment.UserName}'");
        var missing = tools.Where(tool => !IsInstalled(tool)).ToList();
        if (missing.Count > 0) reasons.Add($"{string.Join(", ", missing)} not installed (.ci/run installs them)");
        if (reasons.Count > 0) Skip = $"Skipped: {string.Join("; ", reasons)}.";
    }

    private static bool IsInstalled(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(folder => File.Exists(Path.Combine(folder, name)));
}
