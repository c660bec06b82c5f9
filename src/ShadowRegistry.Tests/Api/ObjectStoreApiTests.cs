using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Api;

// The API-level suites over each object-store driver, against its emulator, as they run over the filesystem and
// in-memory drivers: clients see no difference.

public sealed class BlobApiTestsOnAzure(AzureRegistryServerFixture fixture) : BlobApiTests(fixture), IClassFixture<AzureRegistryServerFixture>;

public sealed class BlobApiTestsOnS3(S3RegistryServerFixture fixture) : BlobApiTests(fixture), IClassFixture<S3RegistryServerFixture>;

public sealed class UploadApiTestsOnAzure(AzureRegistryServerFixture fixture) : UploadApiTests(fixture), IClassFixture<AzureRegistryServerFixture>;

public sealed class UploadApiTestsOnS3(S3RegistryServerFixture fixture) : UploadApiTests(fixture), IClassFixture<S3RegistryServerFixture>;

public sealed class ManifestApiTestsOnAzure(AzureRegistryServerFixture fixture) : ManifestApiTests(fixture), IClassFixture<AzureRegistryServerFixture>;

public sealed class ManifestApiTestsOnS3(S3RegistryServerFixture fixture) : ManifestApiTests(fixture), IClassFixture<S3RegistryServerFixture>;

public sealed class ConcurrencyTestsOnAzure(AzureRegistryServerFixture fixture) : ConcurrencyTests(fixture), IClassFixture<AzureRegistryServerFixture>;

public sealed class ConcurrencyTestsOnS3(S3RegistryServerFixture fixture) : ConcurrencyTests(fixture), IClassFixture<S3RegistryServerFixture>;
