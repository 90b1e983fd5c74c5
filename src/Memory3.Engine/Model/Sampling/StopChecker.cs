namespace Memory3.Engine.Model.Sampling;

/// <summary>What <see cref="StopChecker.Push"/> lets through: text safe to emit, and whether a stop string was hit.</summary>
public readonly record struct StopOutput(string Text, bool Stopped);

/// <summary>
/// Finds stop strings in streamed, decoded text, also when one spans several chunks (OpenAI/vLLM: the stop string
/// itself is not returned). Holds back only the longest tail of the text that is a proper prefix of some stop
/// string, so it emits everything that can no longer become part of a stop. One per sequence; after a stop, further
/// pushes return nothing.
/// </summary>
public sealed class StopChecker
{
    private readonly string[] _stops;
    private string _held = "";

    /// <summary>Empty strings in <paramref name="stops"/> are ignored (<see cref="SamplingParams.Validate"/> rejects them).</summary>
    public StopChecker(IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        var list = new List<string>(stops.Count);
        for (int i = 0; i < stops.Count; i++)
            if (!string.IsNullOrEmpty(stops[i])) list.Add(stops[i]);
        _stops = [.. list];
    }

    public bool Stopped { get; private set; }

    /// <summary>The stop string that ended the text, or null.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>
    /// Appends <paramref name="newText"/>. Returns the text that is safe to emit now; when a stop string completes,
    /// returns the not yet emitted text before it, with <c>Stopped</c> set. When several stop strings occur, the one
    /// that completes first (then the longest) wins.
    /// </summary>
    public StopOutput Push(string newText)
    {
        if (Stopped) return new StopOutput("", true);
        if (_stops.Length == 0) return new StopOutput(newText ?? "", false);
        if (string.IsNullOrEmpty(newText)) return new StopOutput("", false);

        string text = _held.Length == 0 ? newText : string.Concat(_held, newText);

        // The stop that completes first wins, as if the text had arrived one character at a time (so the result does
        // not depend on how the text was chunked); at equal ends, the longer one (earliest start). Every occurrence
        // ends inside the new chunk: an earlier one would have stopped an earlier push.
        int at = -1, atEnd = int.MaxValue;
        string? which = null;
        foreach (var s in _stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i < 0) continue;
            int end = i + s.Length;
            if (end < atEnd || (end == atEnd && i < at)) { at = i; atEnd = end; which = s; }
        }
        if (at >= 0)
        {
            Stopped = true;
            MatchedStop = which;
            _held = "";
            return new StopOutput(text[..at], true);
        }

        int hold = HoldBack(text);
        _held = hold == 0 ? "" : text[^hold..];
        return new StopOutput(hold == 0 ? text : text[..^hold], false);
    }

    /// <summary>At the end of generation: the held-back text (empty after a stop).</summary>
    public string Flush()
    {
        string held = _held;
        _held = "";
        return Stopped ? "" : held;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of a stop string.</summary>
    private int HoldBack(string text)
    {
        int best = 0;
        foreach (var s in _stops)
        {
            for (int len = Math.Min(s.Length - 1, text.Length); len > best; len--)
            {
                if (text.AsSpan(text.Length - len).SequenceEqual(s.AsSpan(0, len))) { best = len; break; }
            }
        }
        return best;
    }
}
