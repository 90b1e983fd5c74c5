namespace Memory3.Server.Hosting;

/// <summary>
/// The product keeps <c>appsettings.json</c> and <c>models/</c> at the repository root. The server may start with
/// its content root there (<c>dotnet run</c> from the root, a container), in <c>src/Memory3.Server</c>
/// (<c>WebApplicationFactory</c>) or in a bin folder; relative paths are looked up from there upwards.
/// </summary>
public static class RepositoryLayout
{
    /// <summary>The nearest directory at or above the content root (then the app's base directory) holding <c>Memory3.sln</c> or <c>appsettings.json</c> next to <c>models/</c>.</summary>
    public static string? FindRoot(string contentRoot)
    {
        foreach (var start in new[] { contentRoot, AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Memory3.sln")) ||
                    (File.Exists(Path.Combine(d.FullName, "appsettings.json")) && Directory.Exists(Path.Combine(d.FullName, "models"))))
                    return d.FullName;
        return null;
    }

    /// <summary>An absolute path as is; a relative one from the content root or the first parent where it exists.</summary>
    public static string ResolvePath(string path, string contentRoot)
    {
        if (Path.IsPathRooted(path)) return path;
        foreach (var start in new[] { contentRoot, AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var candidate = Path.Combine(d.FullName, path);
                if (Directory.Exists(candidate) || File.Exists(candidate)) return Path.GetFullPath(candidate);
            }
        return Path.GetFullPath(Path.Combine(contentRoot, path));
    }

    /// <summary>Adds the repository root's <c>appsettings.json</c> beneath every other source (so environment, command line and tests override it).</summary>
    public static IConfigurationBuilder AddRepositorySettings(this IConfigurationBuilder config, IHostEnvironment env)
    {
        var root = FindRoot(env.ContentRootPath);
        if (root is null) return config;
        var file = Path.Combine(root, "appsettings.json");
        if (!File.Exists(file)) return config;
        var source = new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = "appsettings.json",
            Optional = true,
            ReloadOnChange = false,
            FileProvider = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(root),
        };
        config.Sources.Insert(0, source);
        return config;
    }
}
