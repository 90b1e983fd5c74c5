using static TorchSharp.torch;

namespace Memory3.Engine.Model;

/// <summary>Rotary position embedding in the Hugging Face convention (rotate_half), with llama3-type frequency scaling.</summary>
public static class Rope
{
    /// <summary>Inverse frequencies [head_dim/2], after <c>rope_scaling</c>.</summary>
    public static double[] InverseFrequencies(ModelConfig c)
    {
        int half = c.HeadDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
        if (c.RopeScaling is { RopeType: "llama3" } s)
        {
            double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            for (int i = 0; i < half; i++)
            {
                double wavelen = 2 * Math.PI / inv[i];
                if (wavelen > lowWavelen) inv[i] /= s.Factor;
                else if (wavelen >= highWavelen)
                {
                    double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    inv[i] = (1 - smooth) * inv[i] / s.Factor + smooth * inv[i];
                }
            }
        }
        return inv;
    }

    /// <summary>cos and sin of shape [T, 1, head_dim/2] for the given positions, in <paramref name="dtype"/>.</summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor invFreq, int[] positions, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        var pos = tensor(positions, ScalarType.Float32, device).unsqueeze(1);
        var freqs = (pos * invFreq.unsqueeze(0)).unsqueeze(1);      // [T, 1, d/2]
        return (freqs.cos().to(dtype).MoveToOuterDisposeScope(), freqs.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>x [T, heads, d] rotated: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).MoveToOuterDisposeScope();
    }
}

/// <summary>What every layer needs for one step: the batch, the pool, the RoPE tables and cached masks.</summary>
public sealed class StepContext(StepBatch batch, KvCachePool pool, Tensor cos, Tensor sin, Device device) : IDisposable
{
    private readonly Dictionary<(int, int, int), Tensor> _masks = new();
    public StepBatch Batch { get; } = batch;
    public KvCachePool Pool { get; } = pool;
    public Tensor Cos { get; } = cos;
    public Tensor Sin { get; } = sin;

    /// <summary>Additive float mask [len, L]: row i may see cache index j when j ≤ cacheStart + i. Shared by all layers of a step.</summary>
    public Tensor CausalMask(int len, int cacheStart, int total)
    {
        if (_masks.TryGetValue((len, cacheStart, total), out var m)) return m;
        var rows = arange(len, device: device).unsqueeze(1) + cacheStart;
        var cols = arange(total, device: device).unsqueeze(0);
        m = zeros([len, total], ScalarType.Float32, device).masked_fill(cols > rows, Scalars.NegativeInfinity).DetachFromDisposeScope();
        rows.Dispose(); cols.Dispose();
        _masks[(len, cacheStart, total)] = m;
        return m;
    }

    private readonly Dictionary<(bool, int, int, int, int), Tensor> _memoryMasks = new();

    /// <summary>
    /// Additive float mask [kv_heads, 1, 1, L] over a sequence's memory slots: a non-memory layer hides the whole
    /// region; a memory layer hides the empty slots, and every slot for KV heads past <paramref name="memoryKvHeads"/>.
    /// </summary>
    public Tensor MemoryMask(bool memoryLayer, int memoryKvHeads, int kvHeads, int start, int length, int valid, int total)
    {
        var key = (memoryLayer, start, length, memoryLayer ? valid : 0, total);
        if (_memoryMasks.TryGetValue(key, out var m)) return m;
        var data = new float[kvHeads * total];
        for (int h = 0; h < kvHeads; h++)
        {
            int visible = memoryLayer && h < memoryKvHeads ? valid : 0;
            for (int j = start + visible; j < start + length; j++) data[h * total + j] = float.NegativeInfinity;
        }
        m = tensor(data, [kvHeads, 1, 1, total], ScalarType.Float32, device).DetachFromDisposeScope();
        _memoryMasks[key] = m;
        return m;
    }

    /// <summary>Every sequence of the step brings exactly one token (a pure decode step).</summary>
    public bool DecodeOnly { get; } = batch.Sequences.Length > 0 && batch.Sequences.All(s => s.Length == 1);

    /// <summary>The sequences that bring one token this step (all of them in a pure decode step).</summary>
    public int[] DecodeSequences { get; } = Enumerable.Range(0, batch.Sequences.Length).Where(i => batch.Sequences[i].Length == 1).ToArray();

    private Tensor? _decodeRows;

    /// <summary>The flattened-batch rows of <see cref="DecodeSequences"/> [Bd].</summary>
    public Tensor DecodeRows => _decodeRows ??= tensor(DecodeSequences.Select(i => (long)batch.Sequences[i].Start).ToArray(), ScalarType.Int64, device).DetachFromDisposeScope();

    private (Tensor Slots, Tensor Positions, int MaxLen, bool Contiguous)? _decodeIndex;
    private readonly Dictionary<bool, Tensor> _decodeMasks = new();

    /// <summary>For a decode step: slot and cache-index tensors [B], the longest cache length, and whether slots are 0..B-1.</summary>
    public (Tensor Slots, Tensor Positions, int MaxLen, bool Contiguous) DecodeIndex()
    {
        if (_decodeIndex is { } d) return d;
        var seqs = DecodeSequences.Select(i => Batch.Sequences[i]).ToArray();
        var slots = new long[seqs.Length];
        var pos = new long[seqs.Length];
        int maxLen = 0;
        bool contiguous = true;
        for (int i = 0; i < seqs.Length; i++)
        {
            slots[i] = seqs[i].Slot;
            pos[i] = seqs[i].CacheStart;
            maxLen = Math.Max(maxLen, seqs[i].CacheStart + 1);
            contiguous &= seqs[i].Slot == i;
        }
        var r = (tensor(slots, ScalarType.Int64, device).DetachFromDisposeScope(), tensor(pos, ScalarType.Int64, device).DetachFromDisposeScope(), maxLen, contiguous);
        _decodeIndex = r;
        return r;
    }

    /// <summary>
    /// Additive mask [B, kv_heads, 1, 1, L] for a decode step: each sequence sees its cache up to its own token, with
    /// its memory region hidden in non-memory layers and its empty memory slots (and heads without memory) hidden in
    /// memory layers.
    /// </summary>
    public Tensor DecodeMask(bool memoryLayer, int memoryKvHeads, int kvHeads)
    {
        if (_decodeMasks.TryGetValue(memoryLayer, out var m)) return m;
        var seqs = DecodeSequences.Select(i => Batch.Sequences[i]).ToArray();
        int L = DecodeIndex().MaxLen;
        var data = new float[seqs.Length * kvHeads * L];
        for (int b = 0; b < seqs.Length; b++)
        {
            var sl = seqs[b];
            for (int h = 0; h < kvHeads; h++)
            {
                var row = data.AsSpan((b * kvHeads + h) * L, L);
                row[(sl.CacheStart + 1)..].Fill(float.NegativeInfinity);
                if (sl.MemoryLength > 0)
                {
                    int visible = memoryLayer && h < memoryKvHeads ? sl.MemoryValid : 0;
                    row.Slice(sl.MemoryStart + visible, sl.MemoryLength - visible).Fill(float.NegativeInfinity);
                }
            }
        }
        m = tensor(data, [seqs.Length, kvHeads, 1, 1, L], ScalarType.Float32, device).DetachFromDisposeScope();
        _decodeMasks[memoryLayer] = m;
        return m;
    }

    public void Dispose()
    {
        if (_decodeIndex is { } d) { d.Slots.Dispose(); d.Positions.Dispose(); }
        _decodeRows?.Dispose();
        foreach (var dm in _decodeMasks.Values) dm.Dispose();
        foreach (var m in _masks.Values) m.Dispose();
        foreach (var m in _memoryMasks.Values) m.Dispose();
        _masks.Clear();
        _memoryMasks.Clear();
    }
}
