namespace ShadowRegistry.Tests.Security;

/// <summary>
/// Restricted mode (Auth:AnonymousPull=false), one row per (principal, repository, endpoint). Anonymous clients are
/// challenged everywhere; the reader reads everything and writes nothing; the restricted writer (team-a/**) does
/// everything in team-a and nothing, not even a pull, elsewhere; the full writer does everything. Each row prepares
/// its own content where the request would change it, and checks afterwards that a refused request changed nothing
/// and an allowed one did what it says.
/// </summary>
public sealed class RestrictedAuthorizationMatrixTests(RestrictedMatrixFixture fixture) : IClassFixture<RestrictedMatrixFixture>
{
    public static IEnumerable<object[]> Cells => AuthorizationMatrix.RestrictedCells();

    [Theory]
    [MemberData(nameof(Cells))]
    public Task Cell(Principal principal, Repo repository, Endpoint endpoint, string expected) =>
        AuthorizationMatrix.RunCellAsync(fixture, principal, repository, endpoint, expected);
}
