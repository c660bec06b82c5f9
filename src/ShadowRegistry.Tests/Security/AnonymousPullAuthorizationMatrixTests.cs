namespace ShadowRegistry.Tests.Security;

/// <summary>
/// The smaller matrix in anonymous-pull mode (the default): repository reads and the catalog are public, with or
/// without an anonymous token; GET /v2/ still challenges a client without a token; writes need a writer, and an
/// anonymous client trying one gets 401.
/// </summary>
public sealed class AnonymousPullAuthorizationMatrixTests(AnonymousPullMatrixFixture fixture) : IClassFixture<AnonymousPullMatrixFixture>
{
    public static IEnumerable<object[]> Cells => AuthorizationMatrix.AnonymousPullCells();

    [Theory]
    [MemberData(nameof(Cells))]
    public Task Cell(Principal principal, Repo repository, Endpoint endpoint, string expected) =>
        AuthorizationMatrix.RunCellAsync(fixture, principal, repository, endpoint, expected);
}
