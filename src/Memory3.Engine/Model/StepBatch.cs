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
public readonly record struct SequenceSlice(int Slot, int Start, int Length, int CacheStart, bool AllLogits = false);

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
            expect += s.Length;
        }
        if (expect != TokenIds.Length) throw new ArgumentException("sequences do not cover the batch");
        foreach (var t in TokenIds) if ((uint)t >= (uint)vocabSize) throw new ArgumentException($"token id {t} is outside the vocabulary ({vocabSize})");
    }
}
