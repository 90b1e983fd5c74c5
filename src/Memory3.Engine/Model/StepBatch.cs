namespace Memory3.Engine.Model;

/// <summary>
/// One sequence's share of a flattened step: rows <c>Start..Start+Length-1</c> of the batch belong to it.
/// Their keys and values are written at cache index <c>CacheStart..</c> of the sequence's KV slot, and each row
/// attends causally to every cached entry up to and including its own (cache index <c>CacheStart + i</c>).
/// </summary>
/// <param name="Slot">The sequence's slot in the <see cref="KvCachePool"/>.</param>
/// <param name="Start">First row of the sequence in the flattened batch.</param>
/// <param name="Length">Number of new tokens (a prefill chunk, or 1 when decoding).</param>
/// <param name="CacheStart">Tokens already in the slot before this step.</param>
/// <param name="AllLogits">Return logits for every row (prompt logprobs, tests) rather than only the last.</param>
/// <param name="MemoryStart">First cache index of the sequence's memory slots (explicit memory; 0 when none).</param>
/// <param name="MemoryLength">Number of memory slots (memories_per_chunk × tokens_per_head); 0 when the sequence reads no memory.</param>
/// <param name="MemoryValid">How many of those slots hold a memory now; the rest are masked.</param>
/// <remarks>
/// Memory slots sit between the prefix and the context, so the causal rule on cache indices already lets every
/// context row see them and keeps them from the prefix. Non-memory layers mask the whole region, memory layers
/// mask the empty part of it and the KV heads past <c>memory_kv_heads</c>.
/// </remarks>
public readonly record struct SequenceSlice(int Slot, int Start, int Length, int CacheStart, bool AllLogits = false,
    int MemoryStart = 0, int MemoryLength = 0, int MemoryValid = 0);

/// <summary>A flattened batch as the scheduler hands it to the model: prefill chunks and decode tokens mixed.</summary>
public sealed class StepBatch
{
    /// <summary>Token ids, all sequences' rows one after the other [T].</summary>
    public required int[] TokenIds { get; init; }
    /// <summary>RoPE position of each row [T].</summary>
    public required int[] Positions { get; init; }
    public required SequenceSlice[] Sequences { get; init; }

    public int TotalTokens => TokenIds.Length;

    /// <summary>A batch in which each sequence continues its own cache at positions equal to cache indices.</summary>
    public static StepBatch Contiguous(IReadOnlyList<(int Slot, int CacheStart, int[] Tokens)> seqs, bool allLogits = false)
    {
        int total = 0;
        foreach (var s in seqs) total += s.Tokens.Length;
        var ids = new int[total];
        var pos = new int[total];
        var slices = new SequenceSlice[seqs.Count];
        int row = 0;
        for (int i = 0; i < seqs.Count; i++)
        {
            var (slot, cacheStart, tokens) = seqs[i];
            slices[i] = new SequenceSlice(slot, row, tokens.Length, cacheStart, allLogits);
            for (int j = 0; j < tokens.Length; j++) { ids[row + j] = tokens[j]; pos[row + j] = cacheStart + j; }
            row += tokens.Length;
        }
        return new StepBatch { TokenIds = ids, Positions = pos, Sequences = slices };
    }

    public void Validate(int vocabSize, KvCachePool pool)
    {
        if (Positions.Length != TokenIds.Length) throw new ArgumentException("Positions and TokenIds differ in length");
        int expect = 0;
        foreach (var s in Sequences)
        {
            if (s.Start != expect || s.Length <= 0) throw new ArgumentException($"sequence rows must be contiguous and non-empty (slot {s.Slot})");
            if (s.CacheStart + s.Length > pool.MaxTokensPerSlot) throw new ArgumentException($"slot {s.Slot} would hold {s.CacheStart + s.Length} tokens; its capacity is {pool.MaxTokensPerSlot}");
            if ((uint)s.Slot >= (uint)pool.NumSlots) throw new ArgumentException($"slot {s.Slot} is outside the pool");
            if (s.MemoryLength > 0 && (s.MemoryStart < 0 || s.MemoryValid < 0 || s.MemoryValid > s.MemoryLength || s.MemoryStart + s.MemoryLength > s.CacheStart))
                throw new ArgumentException($"slot {s.Slot}: memory region [{s.MemoryStart}, +{s.MemoryLength}) must lie before the rows' cache start {s.CacheStart}");
            expect += s.Length;
        }
        if (expect != TokenIds.Length) throw new ArgumentException("sequences do not cover the batch");
        foreach (var t in TokenIds) if ((uint)t >= (uint)vocabSize) throw new ArgumentException($"token id {t} is outside the vocabulary ({vocabSize})");
    }
}
