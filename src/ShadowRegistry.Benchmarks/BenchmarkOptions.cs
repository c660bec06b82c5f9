using System.Globalization;

namespace ShadowRegistry.Benchmarks;

/// <summary>How blobs are pushed in one request from the client's point of view.</summary>
public enum PushMode
{
    /// <summary>Single POST ?digest= where the server supports it (201), else POST + PUT ?digest= with the body.</summary>
    Auto,
    /// <summary>Always POST /blobs/uploads/?digest= with the body (fails on servers without monolithic POST).</summary>
    Post,
    /// <summary>Always POST (empty) then PUT &lt;location&gt;?digest= with the body.</summary>
    PostPut,
}

/// <summary>Command-line options. Every scenario is bounded by a count; nothing runs "for N seconds".</summary>
public sealed class BenchmarkOptions
{
    public const string Usage = """
        Usage: dotnet run -c Release --project src/ShadowRegistry.Benchmarks -- [options]

        Starts ShadowRegistry (Release build) and CNCF distribution (docker-registry) on free 127.0.0.1 ports, each
        with its own temporary storage, runs the same bounded scenarios against both and prints a markdown table.
        Progress goes to stderr, the report to stdout. Exit code: 0 = ok, 1 = a correctness violation, 2 = setup
        failure, 130 = interrupted.

        General:
          --quick                    smaller counts (about 20 s in all)
          --shadow-dll <path>        ShadowRegistry to run: the native executable, or a ShadowRegistry.dll (run
                                     with dotnet) (default: the published build,
                                     src/ShadowRegistry/bin/Release/net10.0/<rid>/publish/ShadowRegistry, the
                                     Native AOT executable; made with `dotnet publish -c Release --ucr
                                     -p:PublishAot=true src/ShadowRegistry` if it is missing)
          --distribution <path>      docker-registry binary (default: docker-registry on PATH)
          --dotnet <path>            dotnet host used to run a dll (default: dotnet on PATH)
          --temp-dir <folder>        where the two storage folders are created (default: the system temp folder)
          --push-mode auto|post|post-put   how blobs are pushed in one go (default auto: POST ?digest= if the
                                     server answers it with 201, else POST + PUT ?digest=)
          --no-warmup                skip the small untimed warm-up against each server
          --storage filesystem|s3|azure   ShadowRegistry's storage driver (default filesystem); s3 and
                                     azure start the test emulator (s3rver, azurite from .ci/emulators,
                                     `npm ci` there first) and point ShadowRegistry at it; distribution
                                     stays on its filesystem driver (docs/benchmark.md says why)
          -h, --help                 this text

        Scenario sizes (defaults; --quick values in brackets):
          --blobs <n>                (1) monolithic pushes, one new repository each     64 [16]
          --blob-mib <n>             (1) size of each blob in MiB                          4 [4]
          --concurrency <n>          (1)(2)(4) parallel clients                            8 [8]
          --chunked-uploads <n>      (2) chunked uploads, one new repository each         32 [8]
          --chunked-mib <n>          (2) size of each chunked blob in MiB                  8 [4]
          --chunk-mib <n>            (2) PATCH chunk size in MiB                           1 [1]
          --race-clients <n>         (3) clients pushing the same blob at once            16 [16]
          --race-mib <n>             (3) size of the shared blob in MiB                   16 [16]
          --race-rounds <n>          (3) rounds, each with a new blob and new repos        4 [1]
          --manifests <n>            (4) manifest PUTs (spread over the repos of (1))    256 [64]
          --tag-reads <n>            (4) GET tags/list                                  2000 [400]
          --pulls <n>                (5) blob GETs of the blobs of (1)                   128 [32]
          --pull-concurrency <n>     (5) parallel clients                                  8 [8]
          --manifest-gets <n>        (6) manifest GETs by tag                          10000 [2000]
          --get-concurrency <n>      (6)(6v) parallel clients                             16 [16]
          --view-gets <n>            (6v) manifest GETs by tag through a change view,
                                     ShadowRegistry only                   as (6): 10000 [2000]
          --view-ahead <n>           (6v) changes ahead of the viewed change              10 [10]
          --manifest-heads <n>       (7) manifest HEADs by tag                        10000 [2000]
          --head-concurrency <n>     (7) parallel connections                             64 [64]

        Large layers (issue 13; off by default, they take several minutes):
          --large                    (8) single-stream push, chunked push and pull, (9) skopeo push and pull
                                     (when skopeo is installed), (10) pull-through
          --large-mib <n,n>          (8)(9) sizes in MiB                           256,1024
          --large-repeat <n>         (8)(9) operations per size and server                 1
          --large-chunk-mib <n>      (8) PATCH size of the chunked push                   64
          --pull-through-mib <n>     (10) layer size of the pulled-through image          256
          --pull-through-only        (10) alone (implies --large): no other scenario after start-up

        Garbage collection (optional, ShadowRegistry only, instead of the table above; see docs/benchmark.md):
          --gc                       build a store, then time `ShadowRegistry gc` over it while pushing
          --gc-blobs <n>             blobs in the store                               100000 [10000]
          --gc-manifests <n>         tagged images in the store                        10000 [1000]
          --gc-pushes <n>            pushes measured alone (and at most 10× during GC)   300 [100]
          --gc-concurrency <n>       parallel pushing clients                              8 [8]

        Optional scenario, run instead of the others (ShadowRegistry only; no distribution needed):
          --ui-pages                 operator page (/ui/) times with many repositories and changes
          --ui-repositories <n>      base repositories, one image each                 10000 [1000]
          --ui-changes <n>           live changes, in queues of 10                       500 [100]
          --ui-page-gets <n>         sequential GETs of each page                         20 [10]
        """;

    public bool Quick { get; private set; }
    public string? ShadowDll { get; private set; }
    public string? DistributionBinary { get; private set; }
    public string? DotnetHost { get; private set; }
    public string? TempDir { get; private set; }
    public PushMode PushMode { get; private set; } = PushMode.Auto;
    public bool Warmup { get; private set; } = true;

    /// <summary>ShadowRegistry's storage driver: "filesystem", "s3" or "azure" (an emulator started by the benchmark).</summary>
    public string Storage { get; private set; } = "filesystem";

    public int Blobs { get; private set; } = 64;
    public int BlobMiB { get; private set; } = 4;
    public int Concurrency { get; private set; } = 8;
    public int ChunkedUploads { get; private set; } = 32;
    public int ChunkedMiB { get; private set; } = 8;
    public int ChunkMiB { get; private set; } = 1;
    public int RaceClients { get; private set; } = 16;
    public int RaceMiB { get; private set; } = 16;
    public int RaceRounds { get; private set; } = 4;
    public int Manifests { get; private set; } = 256;
    public int TagReads { get; private set; } = 2000;
    public int Pulls { get; private set; } = 128;
    public int PullConcurrency { get; private set; } = 8;
    public int ManifestGets { get; private set; } = 10000;
    public int GetConcurrency { get; private set; } = 16;
    private int? viewGets;
    /// <summary>(6v) GETs through a change view: as many as (6) unless given.</summary>
    public int ViewGets => viewGets ?? ManifestGets;
    public int ViewAhead { get; private set; } = 10;
    public int ManifestHeads { get; private set; } = 10000;
    public int HeadConcurrency { get; private set; } = 64;
    public bool Large { get; private set; }
    public IReadOnlyList<int> LargeMiB { get; private set; } = [256, 1024];
    public int LargeRepeat { get; private set; } = 1;
    public int LargeChunkMiB { get; private set; } = 64;
    public int PullThroughMiB { get; private set; } = 256;
    public bool PullThroughOnly { get; private set; }

    public bool Gc { get; private set; }
    public int GcBlobs { get; private set; } = 100_000;
    public int GcManifests { get; private set; } = 10_000;
    public int GcPushes { get; private set; } = 300;
    public int GcConcurrency { get; private set; } = 8;

    public bool ShowHelp { get; private set; }

    public bool UiPages { get; private set; }
    public int UiRepositories { get; private set; } = 10_000;
    public int UiChanges { get; private set; } = 500;
    public int UiPageGets { get; private set; } = 20;

    public const long MiB = 1024 * 1024;

    /// <summary>Parses the arguments; throws <see cref="ArgumentException"/> with a message for the user.</summary>
    public static BenchmarkOptions Parse(string[] args)
    {
        var options = new BenchmarkOptions();
        if (args.Contains("--quick"))
        {
            options.Quick = true;
            options.Blobs = 16;
            options.ChunkedUploads = 8;
            options.ChunkedMiB = 4;
            options.RaceRounds = 1;
            options.Manifests = 64;
            options.TagReads = 400;
            options.Pulls = 32;
            options.ManifestGets = 2000;
            options.GcBlobs = 10_000;
            options.GcManifests = 1000;
            options.GcPushes = 100;
            options.ManifestHeads = 2000;
            options.UiRepositories = 1000;
            options.UiChanges = 100;
            options.UiPageGets = 10;
        }

        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string Value()
            {
                if (i + 1 >= args.Length) throw new ArgumentException($"{arg} needs a value");
                return args[++i];
            }
            int Count(int min = 1, int max = 1_000_000)
            {
                var text = Value();
                if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
                {
                    throw new ArgumentException($"{arg} needs a whole number from {min} to {max}, not '{text}'");
                }
                return n;
            }

            switch (arg)
            {
                case "--quick": break;
                case "-h" or "--help": options.ShowHelp = true; break;
                case "--shadow-dll": options.ShadowDll = Path.GetFullPath(Value()); break;
                case "--distribution": options.DistributionBinary = Path.GetFullPath(Value()); break;
                case "--dotnet": options.DotnetHost = Path.GetFullPath(Value()); break;
                case "--temp-dir": options.TempDir = Path.GetFullPath(Value()); break;
                case "--no-warmup": options.Warmup = false; break;
                case "--storage":
                    options.Storage = Value() switch
                    {
                        var storage and ("filesystem" or "s3" or "azure") => storage,
                        var other => throw new ArgumentException($"--storage is filesystem, s3 or azure, not '{other}'"),
                    };
                    break;
                case "--push-mode":
                    options.PushMode = Value() switch
                    {
                        "auto" => PushMode.Auto,
                        "post" => PushMode.Post,
                        "post-put" => PushMode.PostPut,
                        var other => throw new ArgumentException($"--push-mode is auto, post or post-put, not '{other}'"),
                    };
                    break;
                case "--blobs": options.Blobs = Count(); break;
                case "--blob-mib": options.BlobMiB = Count(max: 4096); break;
                case "--concurrency": options.Concurrency = Count(max: 256); break;
                case "--chunked-uploads": options.ChunkedUploads = Count(); break;
                case "--chunked-mib": options.ChunkedMiB = Count(max: 4096); break;
                case "--chunk-mib": options.ChunkMiB = Count(max: 1024); break;
                case "--race-clients": options.RaceClients = Count(max: 256); break;
                case "--race-mib": options.RaceMiB = Count(max: 4096); break;
                case "--race-rounds": options.RaceRounds = Count(max: 1000); break;
                case "--manifests": options.Manifests = Count(); break;
                case "--tag-reads": options.TagReads = Count(); break;
                case "--pulls": options.Pulls = Count(); break;
                case "--pull-concurrency": options.PullConcurrency = Count(max: 256); break;
                case "--manifest-gets": options.ManifestGets = Count(); break;
                case "--get-concurrency": options.GetConcurrency = Count(max: 256); break;
                case "--view-gets": options.viewGets = Count(); break;
                case "--view-ahead": options.ViewAhead = Count(max: 100); break;
                case "--gc": options.Gc = true; break;
                case "--gc-blobs": options.GcBlobs = Count(min: 100, max: 10_000_000); break;
                case "--gc-manifests": options.GcManifests = Count(min: 10); break;
                case "--gc-pushes": options.GcPushes = Count(); break;
                case "--gc-concurrency": options.GcConcurrency = Count(max: 256); break;
                case "--manifest-heads": options.ManifestHeads = Count(); break;
                case "--head-concurrency": options.HeadConcurrency = Count(max: 1024); break;
                case "--large": options.Large = true; break;
                case "--large-mib":
                    var sizes = Value().Split(',');
                    options.LargeMiB = sizes.Select(x => int.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 16384
                        ? n : throw new ArgumentException($"--large-mib needs sizes from 1 to 16384 MiB separated by commas, not '{x}'")).ToList();
                    break;
                case "--large-repeat": options.LargeRepeat = Count(max: 100); break;
                case "--large-chunk-mib": options.LargeChunkMiB = Count(max: 4096); break;
                case "--pull-through-mib": options.PullThroughMiB = Count(max: 16384); break;
                case "--pull-through-only": options.PullThroughOnly = options.Large = true; break;
                case "--ui-pages": options.UiPages = true; break;
                case "--ui-repositories": options.UiRepositories = Count(max: 1_000_000); break;
                case "--ui-changes": options.UiChanges = Count(max: 100_000); break;
                case "--ui-page-gets": options.UiPageGets = Count(max: 10_000); break;
                default: throw new ArgumentException($"unknown option '{arg}'");
            }
        }
        return options;
    }

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{(Quick ? "--quick" : "default")} sizes: push {Blobs}×{BlobMiB} MiB @{Concurrency}; " +
        $"chunked {ChunkedUploads}×{ChunkedMiB} MiB in {ChunkMiB} MiB PATCHes @{Concurrency}; " +
        $"race {RaceRounds}×({RaceClients} clients × same {RaceMiB} MiB blob); " +
        $"manifests {Manifests} PUT @{Concurrency} + {TagReads} tags/list @{Concurrency}; " +
        $"pulls {Pulls}×{BlobMiB} MiB @{PullConcurrency}; manifest GET {ManifestGets} @{GetConcurrency}; " +
        $"manifest GET through a change view with {ViewAhead} ahead {ViewGets} @{GetConcurrency}; manifest HEAD {ManifestHeads} @{HeadConcurrency}") +
        (Large ? string.Create(CultureInfo.InvariantCulture,
            $"; large (--large): {string.Join(" and ", LargeMiB)} MiB ×{LargeRepeat} ({LargeChunkMiB} MiB PATCHes), pull-through {PullThroughMiB} MiB") : "");
}
