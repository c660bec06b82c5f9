using System.Diagnostics.Tracing;
using System.Reflection;
using System.Security;
using System.Text;
using System.Text.RegularExpressions;
using ShadowRegistry.Hosting;
using ShadowRegistry.Tests.Infrastructure;

namespace ShadowRegistry.Tests.Unit;

/// <summary>
/// Hosting/StartupTypes.rd.xml lists the generic types (and arrays) the service container builds from open generics
/// while the registry starts and answers its first request. The Native AOT build compiles them ahead of time; without
/// the list its type loader builds each one at start-up, the largest part of the start-up time (docs/benchmark.md).
/// This test keeps the list exactly equal to what start-up builds today.
/// </summary>
public sealed partial class StartupTypesTests
{
    /// <summary>Set to 1 to write the list afresh instead of comparing.</summary>
    private const string WriteVariable = "SHADOWREGISTRY_WRITE_STARTUP_TYPES";

    [GeneratedRegex("\"(serviceType|implementationType|itemType)\": \"([^\"]*)\"")]
    private static partial Regex TypeProperty();

    [Fact]
    public async Task TheNativeBuildsListHoldsExactlyTheGenericTypesStartUpBuilds()
    {
        var storage = Directory.CreateTempSubdirectory("shadowregistry-startup-types").FullName;
        try
        {
            var file = Path.Combine(TestPaths.RepositoryRoot(), "src", "ShadowRegistry", "Hosting", "StartupTypes.rd.xml");
            var expected = RdXml(await StartUpTypesAsync(storage));
            if (Environment.GetEnvironmentVariable(WriteVariable) == "1") await File.WriteAllTextAsync(file, expected);
            var actual = await File.ReadAllTextAsync(file);
            Assert.True(actual == expected,
                $"{file} is not what start-up builds today; write it afresh with {WriteVariable}=1 dotnet test --filter {nameof(StartupTypesTests)}.\n"
                + $"Missing:\n{string.Join("\n", Lines(expected).Except(Lines(actual)))}\nNo longer built:\n{string.Join("\n", Lines(actual).Except(Lines(expected)))}");
        }
        finally
        {
            Directory.Delete(storage, recursive: true);
        }

        static IEnumerable<string> Lines(string text) => text.Split('\n').Where(line => line.Contains("<Type ", StringComparison.Ordinal));
    }

    /// <summary>Starts the registry as <c>serve</c> does by default, asks <c>/v2/</c>, and returns what its container built.</summary>
    private static async Task<SortedSet<Type>> StartUpTypesAsync(string storage)
    {
        using var listener = new CallSiteListener();
        var app = RegistryApp.Build(["--listen", "http://127.0.0.1:0", "--data", storage, "--Serilog:MinimumLevel:Default", "Warning"]);
        try
        {
            await app.StartAsync();
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First() + "/") };
            (await client.GetAsync("v2/")).EnsureSuccessStatusCode();
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        var types = new SortedSet<Type>(Comparer<Type>.Create((a, b) => string.CompareOrdinal(Name(a), Name(b))));
        var names = new TypeNames();
        // Other tests' registries run in this process too: only this container's call sites count.
        foreach (Match property in TypeProperty().Matches(listener.CallSitesOf(app.Services.GetHashCode())))
        {
            var type = names.Parse(property.Groups[2].Value);
            if (type.IsGenericType) types.Add(type);
            // An IEnumerable<T> is resolved as a T[] made at run time.
            if (property.Groups[1].Value == "itemType") types.Add(type.MakeArrayType());
        }
        return types;
    }

    private static string RdXml(IEnumerable<Type> types)
    {
        var xml = new StringBuilder()
            .Append("<!-- Written by StartupTypesTests (src/ShadowRegistry.Tests/Unit): the generic types the service container builds\n")
            .Append("     at start-up, compiled ahead of time by the Native AOT build instead of built by its type loader at start. -->\n")
            .Append("<Directives xmlns=\"http://schemas.microsoft.com/netfx/2013/01/metadata\">\n  <Application>\n");
        foreach (var assembly in types.GroupBy(AssemblyOf).OrderBy(group => group.Key, StringComparer.Ordinal))
        {
            xml.Append($"    <Assembly Name=\"{assembly.Key}\">\n");
            foreach (var type in assembly) xml.Append($"      <Type Name=\"{SecurityElement.Escape(Name(type))}\" Dynamic=\"Required All\" />\n");
            xml.Append("    </Assembly>\n");
        }
        return xml.Append("  </Application>\n</Directives>\n").ToString();
    }

    /// <summary>The type's name as runtime directives write it: generic arguments assembly-qualified.</summary>
    private static string Name(Type type) =>
        type.IsArray ? Name(type.GetElementType()!) + "[]"
        : !type.IsGenericType ? type.FullName!
        : type.GetGenericTypeDefinition().FullName + "[" + string.Join(",", type.GetGenericArguments().Select(a => $"[{Name(a)},{AssemblyOf(a)}]")) + "]";

    /// <summary>Where a directive for the type goes: the assembly of its generic definition (or element type).</summary>
    private static string AssemblyOf(Type type) =>
        (type.IsArray ? AssemblyOf(type.GetElementType()!) : null)
        ?? (type.IsGenericType ? type.GetGenericTypeDefinition() : type).Assembly.GetName().Name!;

    /// <summary>Reads the names the container's events give (<see cref="Type.ToString"/>: <c>Ns.Name`1[Ns.Arg]</c>).</summary>
    private sealed class TypeNames
    {
        private readonly Dictionary<string, Type> loaded = AppDomain.CurrentDomain.GetAssemblies()
            .SelectMany(assembly =>
            {
                try
                {
                    return assembly.GetTypes();
                }
                catch (ReflectionTypeLoadException e)
                {
                    return e.Types.OfType<Type>().ToArray();
                }
            })
            .Where(type => type.FullName is not null)
            .GroupBy(type => type.FullName!)
            .ToDictionary(group => group.Key, group => group.First());

        public Type Parse(string name)
        {
            var index = 0;
            var type = Parse(name, ref index);
            return index == name.Length ? type : throw new FormatException($"unexpected text after a type name: {name}");
        }

        private Type Parse(string name, ref int index)
        {
            var start = index;
            while (index < name.Length && name[index] is not ('[' or ',' or ']')) index++;
            var definition = loaded.GetValueOrDefault(name[start..index]) ?? throw new InvalidOperationException($"type {name[start..index]} is not loaded");
            if (index == name.Length || name[index] != '[') return definition;
            var arguments = new List<Type>();
            do
            {
                index++;
                arguments.Add(Parse(name, ref index));
            }
            while (name[index] == ',');
            index++;
            return definition.MakeGenericType([.. arguments]);
        }
    }

    /// <summary>The dependency-injection event source's call-site descriptions (JSON, in chunks), per container.</summary>
    private sealed class CallSiteListener : EventListener
    {
        private readonly Dictionary<(long Thread, int Container), StringBuilder> callSites = [];

        public string CallSitesOf(int container)
        {
            lock (callSites) return string.Concat(callSites.Where(entry => entry.Key.Container == container).Select(entry => entry.Value.ToString()));
        }

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Extensions-DependencyInjection") EnableEvents(eventSource, EventLevel.Verbose);
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            // CallSiteBuilt(serviceType, callSite, chunkIndex, chunkCount, serviceProviderHashCode): a long call site
            // comes as consecutive chunks on the thread that built it.
            if (e.EventName != "CallSiteBuilt" || e.Payload is not [_, string json, _, _, int container]) return;
            lock (callSites)
            {
                var key = (e.OSThreadId, container);
                if (!callSites.TryGetValue(key, out var text)) callSites[key] = text = new StringBuilder();
                text.Append(json);
            }
        }
    }
}
