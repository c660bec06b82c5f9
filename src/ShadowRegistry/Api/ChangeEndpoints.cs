using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Serilog;
using ShadowRegistry.Auth;
using ShadowRegistry.Changes;
using ShadowRegistry.Domain;

namespace ShadowRegistry.Api;

/// <summary>
/// The management API of speculative changes under /api/v1/changes (docs/changes-api.md): thin JSON endpoints over
/// <see cref="ChangeService"/>. With authentication on, every call needs HTTP Basic credentials of a user with the
/// write role whose repositories cover the change's view ("changes/&lt;id&gt;/…").
/// </summary>
public sealed partial class ChangeEndpoints(
    ChangeService changes,
    CredentialVerifier credentials,
    IOptions<AuthOptions> authOptions,
    IOptions<ChangeOptions> options,
    IDiagnosticContext diagnostics)
{
    public const string Root = "/api/v1/changes";

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet(Root, ListAsync);
        app.MapPut(Root + "/{id}", PutAsync);
        app.MapGet(Root + "/{id}", ShowAsync);
        app.MapDelete(Root + "/{id}", DeleteAsync);
        app.MapPost(Root + "/{id}/promote", PromoteAsync);
        // Anything else below the root is an OCI-style error too, never an empty 404 or 405.
        app.Map(Root + "/{**rest}", (HttpContext context) => throw RegistryError.NotFound(context.Request.Path.Value ?? ""));
    }

    private async Task ListAsync(HttpContext context)
    {
        await AuthorizeAsync(context, null);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var label in context.Request.Query["label"])
        {
            var equals = label?.IndexOf('=') ?? -1;
            if (equals <= 0) throw new ChangeInvalidException($"label filter '{label}' is not key=value");
            labels[label![..equals]] = label[(equals + 1)..];
        }
        var list = await changes.ListAsync(labels, context.RequestAborted);
        var result = new List<ChangeDescription>();
        foreach (var change in list) result.Add(await DescribeAsync(change, withTags: false, context.RequestAborted));
        await context.Response.WriteAsJsonAsync(new ChangeList(result), ApiJson.Default.ChangeList, cancellationToken: context.RequestAborted);
    }

    private async Task PutAsync(HttpContext context, string id)
    {
        var change = Id(id);
        await AuthorizeAsync(context, change);
        var body = await ReadBodyAsync(context, ApiJson.Default.ChangeRequest) ?? new ChangeRequest();
        TimeSpan? ttl = body.Ttl is null ? null : ParseDuration(body.Ttl);
        // A credential for the job building the change: shown once, in this answer; only its hash is kept.
        var credential = body.Credential == true ? ChangeCredentials.Issue() : default((string Secret, string Hash)?);
        var (record, created) = await changes.PutAsync(change, body.Ahead, ttl, body.Labels, context.RequestAborted, credential?.Hash);
        context.Response.StatusCode = created ? StatusCodes.Status201Created : StatusCodes.Status200OK;
        if (created) context.Response.Headers.Location = $"{Root}/{change}";
        context.Response.Headers.CacheControl = "no-store";
        var description = await DescribeAsync(record, withTags: !created, context.RequestAborted);
        if (credential is { } issued) description = description with { Credential = new ChangeCredential(ChangeCredentials.UserOf(change), issued.Secret) };
        await context.Response.WriteAsJsonAsync(description, ApiJson.Default.ChangeDescription, cancellationToken: context.RequestAborted);
    }

    private async Task ShowAsync(HttpContext context, string id)
    {
        var change = Id(id);
        await AuthorizeAsync(context, change);
        var record = await changes.GetLiveAsync(change, context.RequestAborted, fresh: true);
        await context.Response.WriteAsJsonAsync(await DescribeAsync(record, withTags: true, context.RequestAborted), ApiJson.Default.ChangeDescription,
            cancellationToken: context.RequestAborted);
    }

    private async Task DeleteAsync(HttpContext context, string id)
    {
        var change = Id(id);
        await AuthorizeAsync(context, change);
        await changes.DeleteAsync(change, context.RequestAborted);
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    private async Task PromoteAsync(HttpContext context, string id)
    {
        var change = Id(id);
        await AuthorizeAsync(context, change);
        var body = await ReadBodyAsync(context, ApiJson.Default.PromoteRequest) ?? new PromoteRequest();
        var selection = body.Tags?.Select(t => (t.Repository ?? throw new ChangeInvalidException("each tag needs a repository"),
            t.Tag ?? throw new ChangeInvalidException("each tag needs a tag"))).ToList();
        var promoted = await changes.PromoteAsync(change, selection, body.Expect, context.RequestAborted);
        await context.Response.WriteAsJsonAsync(new PromotedTags(promoted), ApiJson.Default.PromotedTags, cancellationToken: context.RequestAborted);
    }

    private async Task<ChangeDescription> DescribeAsync(ChangeRecord record, bool withTags, CancellationToken cancellationToken)
    {
        var view = await changes.ViewAsync(ChangeId.Parse(record.Id), cancellationToken);
        var suffix = options.Value.HostSuffix;
        return new ChangeDescription(record.Id, record.Ahead, view.Skipped, record.Labels, record.CreatedAt, record.ExpiresAt,
            new ChangeViewAddress($"/v2/{options.Value.PathPrefix}/{record.Id}/", string.IsNullOrEmpty(suffix) ? null : $"{record.Id}.{suffix}"))
        {
            Tags = withTags ? await changes.TagsAsync(record, cancellationToken) : null,
        };
    }

    /// <summary>
    /// With authentication on: Basic credentials of a user with the write role covering the change's view (or every
    /// repository, for the list). Failed logins count towards the same throttle as the token endpoint's.
    /// </summary>
    private async Task AuthorizeAsync(HttpContext context, ChangeId? change)
    {
        if (!authOptions.Value.IsEnabled) return;
        var header = context.Request.Headers.Authorization.ToString();
        RegistryUser? user = null;
        if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase) && Decode(header[6..].Trim()) is var (name, password))
        {
            var check = await credentials.VerifyAsync(name, password, context.Connection.RemoteIpAddress, context.RequestAborted);
            if (check.Throttled is { } throttled)
            {
                var error = new RegistryError(StatusCodes.Status429TooManyRequests, "TOOMANYREQUESTS", "too many failed logins; try again later");
                error.Headers["Retry-After"] = ((int)Math.Ceiling(throttled.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                throw error;
            }
            user = check.User;
        }
        if (user is null)
        {
            var error = new RegistryError(401, "UNAUTHORIZED", "authentication required to manage changes");
            error.Headers["WWW-Authenticate"] = "Basic realm=\"ShadowRegistry\"";
            throw error;
        }
        diagnostics.Set("User", user.Name);
        var covered = change is null ? user.CoversEverything : user.Covers($"{options.Value.PathPrefix}/{change}/x");
        if (!user.CanWrite || !covered || user.IsChangeCredential) throw new RegistryError(403, "DENIED", "managing changes needs the write role on the change's repositories");
    }

    private static (string Name, string Password)? Decode(string value)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(value));
            var colon = text.IndexOf(':');
            return colon < 0 ? null : (text[..colon], text[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private ChangeId Id(string id)
    {
        diagnostics.Set("ChangeId", id);
        return ChangeId.Parse(id);
    }

    private static async Task<T?> ReadBodyAsync<T>(HttpContext context, JsonTypeInfo<T> type) where T : class
    {
        var content = await Storage.StreamCopy.ReadLimitedAsync(context.Request.Body, 64 * 1024, context.RequestAborted)
            ?? throw new ChangeInvalidException("request body over 64 KiB");
        if (content.Length == 0) return null;
        try
        {
            return JsonSerializer.Deserialize(content, type);
        }
        catch (JsonException e)
        {
            throw new ChangeInvalidException($"request body is not the expected JSON: {e.Message}");
        }
    }

    /// <summary>"90s", "30m", "24h", "7d", or several of them ("1h30m").</summary>
    public static TimeSpan ParseDuration(string text)
    {
        var match = DurationPattern().Match(text);
        if (!match.Success) throw new ChangeInvalidException($"ttl '{text}' is not a duration like 90s, 30m, 24h, 7d or 1h30m");
        var total = TimeSpan.Zero;
        foreach (Capture part in match.Groups["part"].Captures)
        {
            if (!long.TryParse(part.Value[..^1], out var amount) || amount > 100_000) throw new ChangeInvalidException($"ttl '{text}' is too long");
            total += part.Value[^1] switch
            {
                'd' => TimeSpan.FromDays(amount),
                'h' => TimeSpan.FromHours(amount),
                'm' => TimeSpan.FromMinutes(amount),
                _ => TimeSpan.FromSeconds(amount),
            };
        }
        return total;
    }

    [GeneratedRegex(@"^(?<part>[0-9]{1,6}[dhms])+\z", RegexOptions.CultureInvariant)]
    private static partial Regex DurationPattern();

    internal sealed class ChangeRequest
    {
        public List<string>? Ahead { get; set; }
        public string? Ttl { get; set; }
        public Dictionary<string, string>? Labels { get; set; }
        public bool? Credential { get; set; }
    }

    internal sealed class PromoteRequest
    {
        public List<TagRequest>? Tags { get; set; }
        public Dictionary<string, string?>? Expect { get; set; }
    }

    internal sealed class TagRequest
    {
        public string? Repository { get; set; }
        public string? Tag { get; set; }
    }
}
