using System.Diagnostics;

namespace ShadowRegistry.Tests.Infrastructure;

/// <summary>
/// A small tmpfs mounted on a fresh folder, so a test can fill a real file system and see a real ENOSPC. Mounting
/// needs root (tests run as root in CI); unmounted and removed on dispose.
/// </summary>
public sealed class TmpfsMount : IDisposable
{
    private TmpfsMount(string path) => Path = path;

    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="sizeBytes"/>; fails the test, saying why, when that is not possible.</summary>
    public static TmpfsMount Create(long sizeBytes)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "shadowregistry-tmpfs", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        var (exitCode, output) = Run("mount", "-t", "tmpfs", "-o", $"size={sizeBytes}", "tmpfs", path);
        if (exitCode != 0)
        {
            Directory.Delete(path);
            Assert.Fail($"These tests need a tmpfs to fill up, and 'mount -t tmpfs' failed (exit {exitCode}; they need root and a "
                + $"container allowed to mount, user '{Environment.UserName}'): {output}");
        }
        return new TmpfsMount(path);
    }

    /// <summary>Fills the file system completely with a file named <paramref name="name"/>; returns its path.</summary>
    public string Fill(string name)
    {
        var path = System.IO.Path.Combine(Path, name);
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
        var block = new byte[64 * 1024];
        while (true)
        {
            try
            {
                file.Write(block);
            }
            catch (IOException)
            {
                // Full; whatever part of the block did not fit is simply not there.
                return path;
            }
        }
    }

    /// <summary>Remounts the file system read-only (writes then fail with EROFS, even for root) or writable again.</summary>
    public void SetReadOnly(bool readOnly)
    {
        var (exitCode, output) = Run("mount", "-o", readOnly ? "remount,ro" : "remount,rw", Path);
        Assert.True(exitCode == 0, $"remounting {Path} {(readOnly ? "read-only" : "writable")} failed (exit {exitCode}): {output}");
    }

    public void Dispose()
    {
        // Lazy unmount: a file still open somewhere must not leave the mount behind.
        Run("umount", "-l", Path);
        try
        {
            Directory.Delete(Path);
        }
        catch (IOException)
        {
            // A leftover empty folder in temp must not fail a test.
        }
    }

    /// <summary>Why a tmpfs cannot be mounted here, or null when it can (checked once, by mounting a tiny one).</summary>
    public static string? Unavailable => Probe.Value;

    private static readonly Lazy<string?> Probe = new(() =>
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "shadowregistry-tmpfs", "probe-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        try
        {
            var (exitCode, output) = Run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", path);
            if (exitCode != 0) return $"needs root and permission to mount a tmpfs ('mount -t tmpfs' failed as user '{Environment.UserName}': {output.Trim()})";
            Run("umount", path);
            return null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return $"needs the 'mount' command to mount a tmpfs: {e.Message}";
        }
        finally
        {
            try
            {
                Directory.Delete(path);
            }
            catch (IOException)
            {
                // Still mounted if umount failed; a leftover folder in temp must not stop test discovery.
            }
        }
    });

    private static (int ExitCode, string Output) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.Result);
    }
}

/// <summary>
/// A test that needs <see cref="TmpfsMount"/>. Skipped, with the reason, where no tmpfs can be mounted; never skipped
/// under CI=true, where it then fails saying why.
/// </summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && TmpfsMount.Unavailable is { } reason) Skip = $"Skipped: {reason}.";
    }
}
