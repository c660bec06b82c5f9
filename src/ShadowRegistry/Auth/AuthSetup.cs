using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ShadowRegistry.Auth;

/// <summary>Wires token authentication into the app. Everything is inert unless <see cref="AuthOptions.IsEnabled"/>.</summary>
public static class AuthSetup
{
    public static WebApplicationBuilder AddRegistryAuth(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AuthOptions>().Bind(builder.Configuration.GetSection(AuthOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuthOptions>, AuthOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(provider => TokenSigningKey.Load(provider.GetRequiredService<IOptions<AuthOptions>>().Value.SigningKey));
        services.AddSingleton<AccessPolicy>();
        services.AddSingleton<LoginThrottle>();
        services.AddSingleton<CredentialVerifier>();
        services.AddSingleton<TokenService>();
        services.AddSingleton<TokenEndpoint>();
        return builder;
    }

    /// <summary>Adds the /v2 guard and maps the token endpoint; call after the error middleware, before the /v2 routes.</summary>
    public static WebApplication UseRegistryAuth(this WebApplication app)
    {
        // Reading the options validates them: a bad Auth section stops the registry here with the reasons.
        var options = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AuthSetup).FullName!);
        if (!options.IsEnabled)
        {
            logger.LogInformation("Authentication is off: anyone reaching the registry may pull and push (configure Auth to change that)");
            return app;
        }

        var key = app.Services.GetRequiredService<TokenSigningKey>();
        logger.LogInformation(
            "Token authentication on: {Mode}, {UserCount} user(s), tokens signed {Algorithm} with {Key}, valid for {Lifetime}",
            options.AnonymousPull ? "anonymous pull allowed" : "restricted (reads need authentication too)",
            options.Users.Count, key.Algorithm, key.Description, options.TokenLifetime);
        if (key.IsEphemeral)
        {
            logger.LogWarning("No Auth:SigningKey configured: tokens are signed with a random key made at startup, so they do not survive a restart and other instances reject them");
        }

        app.UseMiddleware<RegistryAuthMiddleware>();
        var endpoint = app.Services.GetRequiredService<TokenEndpoint>();
        app.MapGet(Challenge.TokenPath, endpoint.HandleAsync);
        app.MapPost(Challenge.TokenPath, endpoint.HandleAsync);
        return app;
    }
}

/// <summary>Refuses to start with an Auth section that would not work as meant, listing every problem.</summary>
public sealed class AuthOptionsValidator(IConfiguration configuration) : IValidateOptions<AuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        if (!options.IsEnabled) return ValidateOptionsResult.Success;
        var failures = new List<string>();

        if (string.IsNullOrWhiteSpace(options.Service)) failures.Add("Auth:Service must not be empty");
        if (string.IsNullOrWhiteSpace(options.Issuer)) failures.Add("Auth:Issuer must not be empty");
        if (options.TokenLifetime < TimeSpan.FromSeconds(10) || options.TokenLifetime > TimeSpan.FromDays(1))
            failures.Add("Auth:TokenLifetime must be between 00:00:10 and 1.00:00:00");
        if (options.ClockSkew < TimeSpan.Zero || options.ClockSkew > TimeSpan.FromMinutes(10))
            failures.Add("Auth:ClockSkew must be between 00:00:00 and 00:10:00");
        if (options.CredentialCacheLifetime < TimeSpan.Zero) failures.Add("Auth:CredentialCacheLifetime must not be negative");
        if (options.MaxConcurrentPasswordChecks is < 1 or > 1024) failures.Add("Auth:MaxConcurrentPasswordChecks must be between 1 and 1024");
        if (options.FailedLoginLimit < 0) failures.Add("Auth:FailedLoginLimit must not be negative (0 turns the limit off)");
        if (options.FailedLoginLimit > 0 && (options.FailedLoginWindow < TimeSpan.FromSeconds(1) || options.FailedLoginWindow > TimeSpan.FromDays(1)))
            failures.Add("Auth:FailedLoginWindow must be between 00:00:01 and 1.00:00:00");
        if (options.MaxTokenRequestBytes is < 1024 or > 16 * 1024 * 1024)
            failures.Add("Auth:MaxTokenRequestBytes must be between 1024 and 16777216");
        if (!string.IsNullOrEmpty(options.Realm)
            && !(Uri.TryCreate(options.Realm, UriKind.Absolute, out var realm) && realm.Scheme is "http" or "https"))
            failures.Add($"Auth:Realm must be an absolute http(s) URL, not '{options.Realm}'");

        var userSections = configuration.GetSection($"{AuthOptions.Section}:Users").GetChildren().ToArray();
        foreach (var section in userSections.Where(section => section["Password"] is not null))
        {
            failures.Add($"Auth:Users:{section.Key} ('{section["Name"]}') has a plain Password: store only its hash, in PasswordHash (see 'ShadowRegistry hash-password')");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Users.Count; i++)
        {
            var user = options.Users[i];
            var label = $"Auth:Users:{i} ('{user.Name}')";
            if (string.IsNullOrEmpty(user.Name)) failures.Add($"Auth:Users:{i} has no Name");
            else if (user.Name.Contains(':') || user.Name.Any(char.IsControl)) failures.Add($"{label}: a user name cannot contain ':' or control characters");
            else if (user.Name.StartsWith(IChangeCredentials.UserPrefix, StringComparison.Ordinal))
                failures.Add($"{label}: names starting with '{IChangeCredentials.UserPrefix}' are the credentials of speculative changes");
            else if (!seen.Add(user.Name)) failures.Add($"{label}: the name is used twice");
            if (!PasswordHash.IsWellFormed(user.PasswordHash))
                failures.Add($"{label}: PasswordHash is missing or not a '{PasswordHash.Scheme}:...' hash (make one with 'ShadowRegistry hash-password')");
            if (!string.Equals(user.Role, AuthRoles.Read, StringComparison.OrdinalIgnoreCase) && !string.Equals(user.Role, AuthRoles.Write, StringComparison.OrdinalIgnoreCase))
                failures.Add($"{label}: Role must be '{AuthRoles.Read}' or '{AuthRoles.Write}', not '{user.Role}'");
            foreach (var pattern in user.Repositories.Where(pattern => !RepositoryPattern.TryParse(pattern, out _)))
                failures.Add($"{label}: '{pattern}' is not a repository pattern (lowercase name characters, '/', '*' and '**')");
        }

        try
        {
            TokenSigningKey.Load(options.SigningKey);
        }
        catch (InvalidOperationException e)
        {
            failures.Add(e.Message);
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
