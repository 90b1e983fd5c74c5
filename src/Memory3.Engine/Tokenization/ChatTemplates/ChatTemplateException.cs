namespace Memory3.Engine.Tokenization.ChatTemplates;

/// <summary>
/// A chat template that cannot be parsed (syntax outside the supported subset: <see cref="Line"/> and
/// <see cref="Column"/> are set), that fails while rendering, or that raised an error itself with
/// <c>raise_exception('...')</c> (<see cref="RaisedByTemplate"/>; the message is the template's own). The API turns
/// it into a 400.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    public ChatTemplateException(string message, int? line = null, int? column = null, bool raisedByTemplate = false)
        : base(Format(message, line, column))
    {
        Reason = message;
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }

    /// <summary>What went wrong, without the position.</summary>
    public string Reason { get; }

    /// <summary>1-based line in the template source, where known.</summary>
    public int? Line { get; }

    /// <summary>1-based column in the template source, where known.</summary>
    public int? Column { get; }

    /// <summary>True when the template called <c>raise_exception(msg)</c>; <see cref="Exception.Message"/> is then msg.</summary>
    public bool RaisedByTemplate { get; }

    static string Format(string message, int? line, int? column) =>
        line is null ? message : column is null ? $"chat template line {line}: {message}" : $"chat template line {line}, column {column}: {message}";
}
