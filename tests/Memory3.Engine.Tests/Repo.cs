namespace Memory3.Engine.Tests;

/// <summary>The repository root (where Memory3.sln is), for tests that read what the repository ships.</summary>
public static class Repo
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Memory3.sln"))) return d.FullName;
        throw new InvalidOperationException("no Memory3.sln above " + AppContext.BaseDirectory);
    }
}
