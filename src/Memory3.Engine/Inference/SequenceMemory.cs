using Memory3.Engine.Memory;

namespace Memory3.Engine.Inference;

/// <summary>
/// A memory sequence's KV layout (DESIGN §4): <c>[prefix at cache 0..P-1, positions 0..P-1 | memory slots at cache
/// P..P+M-1 | context at cache P+M.., positions P+R..]</c>, M = memories_per_chunk × tokens_per_head.
/// </summary>
public sealed record MemoryLayout(int[] Prefix, int MemoriesPerChunk, int TokensPerHead, int Interval, int ReferenceMaxTokens)
{
    public int MemoryStart => Prefix.Length;
    public int MemoryLength => MemoriesPerChunk * TokensPerHead;
    public int ContextCacheStart => Prefix.Length + MemoryLength;
    public int ContextPosition => Prefix.Length + ReferenceMaxTokens;
}

/// <summary>Memories for a sequence, ready for the engine thread to copy into its slot before its next forward.</summary>
public sealed record MemoryWrite(Sequence Sequence, int Slot, int MemoryStart, IReadOnlyList<DecodedMemory> Memories);

/// <summary>
/// A sequence's explicit-memory state on the engine thread: its layout, whether its prefix is in the slot, the
/// retrieval in flight (run off the engine thread), the boundary whose memories are attached, and its windows.
/// </summary>
public sealed class SequenceMemory(MemoryLayout layout, IMemorySource source, IReadOnlyCollection<string>? namespaces)
{
    public MemoryLayout Layout { get; } = layout;
    public IMemorySource Source { get; } = source;
    public IReadOnlyCollection<string>? Namespaces { get; } = namespaces;
    public bool PrefixDone { get; internal set; }
    /// <summary>Memory slots holding a memory now (the rest are masked).</summary>
    public int MemoryValid { get; internal set; }
    /// <summary>Context index of the boundary whose memories are attached; -1 before the first.</summary>
    public int AttachedAt { get; internal set; } = -1;
    internal Task<RetrievedMemories>? Pending;
    internal (int Boundary, string Phase, int Start, int End, string Query) PendingWindow;
    public List<MemoryWindow> Windows { get; } = [];
    public int Refreshes { get; internal set; }
    public int ProcessHits { get; internal set; }
    public int RedisHits { get; internal set; }
    public int DiskHits { get; internal set; }
    public int Failures { get; internal set; }
    /// <summary>True while a retrieval is in flight (the sequence is not scheduled).</summary>
    public bool Waiting => Pending is { IsCompleted: false };

    public SequenceMemoryReport Report() =>
        new(Windows.Select(w => w with { }).ToList(), Refreshes, ProcessHits, RedisHits, DiskHits, Failures);
}
