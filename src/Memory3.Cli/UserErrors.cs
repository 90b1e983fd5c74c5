using System.Text.Json;
using Memory3.Engine.Model;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli;

/// <summary>
/// Turns the errors a user can cause (a wrong path, a malformed file, a bad option) into one line and exit code 2,
/// with no stack trace. Anything else is a bug and is shown in full with exit code 1.
/// </summary>
public static class UserErrors
{
    public static int Report(Exception ex)
    {
        while (ex is AggregateException { InnerExceptions.Count: 1 } ae) ex = ae.InnerException!;
        string? message = ex switch
        {
            ModelLoadException or CommandParseException or CommandRuntimeException or ArgumentException => ex.Message,
            FileNotFoundException f => $"{f.FileName}: no such file",
            DirectoryNotFoundException d => d.Message,
            UnauthorizedAccessException or IOException => ex.Message,
            JsonException j => $"malformed JSON: {j.Message}",
            _ => null,
        };
        if (message is null)
        {
            AnsiConsole.WriteException(ex);
            return 1;
        }
        Console.Error.WriteLine($"memory3: error: {message}");
        return 2;
    }
}
