namespace ShadowRegistry.Api;

/// <summary>
/// Set by authorization when the caller may not read a mount's source repository: the upload endpoint then treats
/// the request as a plain upload (202 and a session), as it does for any blob it cannot mount.
/// </summary>
public static class MountPermission
{
    private static readonly object Key = new();

    public static void Deny(HttpContext context) => context.Items[Key] = true;

    public static bool IsDenied(HttpContext context) => context.Items.ContainsKey(Key);
}
