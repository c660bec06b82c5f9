namespace ShadowRegistry.Auth;

/// <summary>Credentials issued to speculative changes ("change/&lt;id&gt;"), checked by whoever keeps the changes.</summary>
public interface IChangeCredentials
{
    /// <summary>What every change credential's user name starts with; configured user names cannot (they have no slash).</summary>
    public const string UserPrefix = "change/";

    /// <summary>The user the credential stands for while its change is live, or null.</summary>
    Task<RegistryUser?> VerifyAsync(string name, string secret, CancellationToken cancellationToken);
}
