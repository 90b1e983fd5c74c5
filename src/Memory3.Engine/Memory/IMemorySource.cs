namespace Memory3.Engine.Memory;

/// <summary>What a sequence asks for at a chunk boundary.</summary>
public sealed record MemoryQuery(string Text, IReadOnlyCollection<string>? Namespaces, int TopK);

/// <summary>A reference attached to a window, for citations.</summary>
public sealed record MemoryCitation(string Id, string Namespace, string Text, double Score);

/// <summary>Memories for one window, with where they came from.</summary>
public sealed record RetrievedMemories(IReadOnlyList<DecodedMemory> Memories, IReadOnlyList<MemoryCitation> Citations,
    int ProcessHits = 0, int RedisHits = 0, int DiskHits = 0)
{
    public static readonly RetrievedMemories None = new([], []);
}

/// <summary>Retrieval plus the memory tiers, as the decoder sees them. Runs off the engine thread.</summary>
public interface IMemorySource
{
    ValueTask<RetrievedMemories> RetrieveAsync(MemoryQuery query, CancellationToken ct = default);
}

/// <summary>
/// When a sequence's memories change (DESIGN §4): each prompt chunk of <c>retrieval_interval</c> tokens retrieves
/// with its own text; while decoding, the forward of generated token g (g ≥ interval, g a multiple of it) first
/// retrieves with the previous <c>interval</c> generated tokens; the first decoded chunk inherits the last prompt
/// chunk's memories. A 128-token prompt and 128 generated tokens make 2 + 1 = 3 retrievals (the paper's count).
/// </summary>
public static class MemorySchedule
{
    public static IEnumerable<(int Start, int Length)> PromptChunks(int promptLength, int interval)
    {
        for (int s = 0; s < promptLength; s += interval) yield return (s, Math.Min(interval, promptLength - s));
    }

    /// <summary>Whether the forward of generated token <paramref name="g"/> (0-based) is preceded by a refresh,
    /// and the generated range [queryStart, g) whose text is the query.</summary>
    public static bool RefreshBeforeDecode(int g, int interval, out int queryStart)
    {
        queryStart = g - interval;
        return g > 0 && g % interval == 0;
    }
}
