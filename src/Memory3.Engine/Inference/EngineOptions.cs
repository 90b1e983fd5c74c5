namespace Memory3.Engine.Inference;

/// <summary>
/// Budgets of the continuous-batching engine. Bound from configuration (<c>Memory3:Engine</c>) and checked by
/// <see cref="Validate"/> at start: a bad value stops start-up with a message naming the key.
/// </summary>
public sealed class EngineOptions
{
    /// <summary>Most sequences in one step (vLLM <c>max_num_seqs</c>); also the number of KV slots unless the KV budget allows fewer.</summary>
    public int MaxNumSeqs { get; set; } = 16;
    /// <summary>Most tokens (prefill chunks + decode tokens) in one step (vLLM <c>max_num_batched_tokens</c>).</summary>
    public int MaxBatchedTokens { get; set; } = 512;
    /// <summary>Largest prefill chunk of one sequence in one step; 0: limited by <see cref="MaxBatchedTokens"/> only.</summary>
    public int MaxPrefillChunk { get; set; }
    /// <summary>Most requests admitted but not yet running; past it requests get 429.</summary>
    public int MaxQueue { get; set; } = 64;
    /// <summary>Context length served (prompt + completion); 0: the model's <c>max_position_embeddings</c>.</summary>
    public int MaxModelLen { get; set; }
    /// <summary>KV cache budget in bytes; 0: one slot per <see cref="MaxNumSeqs"/>. With a budget, slots = min(MaxNumSeqs, budget / slot bytes).</summary>
    public long KvCacheBytes { get; set; }
    /// <summary>Largest <c>n</c> (choices per request).</summary>
    public int MaxN { get; set; } = 16;
    /// <summary>Seconds a 429 or 503 answer asks the client to wait (Retry-After).</summary>
    public int RetryAfterSeconds { get; set; } = 1;
    /// <summary>A memory retrieval that takes longer is abandoned: that window reads no memory (counted as a failure).</summary>
    public int MemoryRetrievalTimeoutMs { get; set; } = 30_000;

    /// <summary>Problems, each naming its key relative to <paramref name="prefix"/>; empty when valid.</summary>
    public List<string> Validate(string prefix = "Engine")
    {
        var e = new List<string>();
        if (MaxNumSeqs < 1) e.Add($"{prefix}:MaxNumSeqs must be at least 1 (got {MaxNumSeqs})");
        if (MaxBatchedTokens < 1) e.Add($"{prefix}:MaxBatchedTokens must be at least 1 (got {MaxBatchedTokens})");
        else if (MaxBatchedTokens < MaxNumSeqs) e.Add($"{prefix}:MaxBatchedTokens ({MaxBatchedTokens}) must be at least MaxNumSeqs ({MaxNumSeqs})");
        if (MaxPrefillChunk < 0) e.Add($"{prefix}:MaxPrefillChunk must be 0 (off) or positive (got {MaxPrefillChunk})");
        if (MaxQueue < 1) e.Add($"{prefix}:MaxQueue must be at least 1 (got {MaxQueue})");
        if (MaxModelLen < 0) e.Add($"{prefix}:MaxModelLen must be 0 (the model's) or positive (got {MaxModelLen})");
        if (KvCacheBytes < 0) e.Add($"{prefix}:KvCacheBytes must be 0 (one slot per sequence) or positive (got {KvCacheBytes})");
        if (MaxN < 1) e.Add($"{prefix}:MaxN must be at least 1 (got {MaxN})");
        if (MemoryRetrievalTimeoutMs < 1) e.Add($"{prefix}:MemoryRetrievalTimeoutMs must be at least 1 (got {MemoryRetrievalTimeoutMs})");
        if (RetryAfterSeconds < 1) e.Add($"{prefix}:RetryAfterSeconds must be at least 1 (got {RetryAfterSeconds})");
        return e;
    }
}
