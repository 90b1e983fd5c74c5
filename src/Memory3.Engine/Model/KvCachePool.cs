using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Model;

/// <summary>
/// The KV cache, preallocated once: per layer one K and one V tensor of shape
/// [slots, kv_heads, max_tokens_per_slot, head_dim]. A sequence takes a slot and writes into it in place; nothing
/// grows by concatenation. Owned by the engine thread.
/// </summary>
public sealed class KvCachePool : IDisposable
{
    private readonly Tensor[] _k, _v;
    private readonly Stack<int> _free = new();
    private readonly bool[] _inUse;

    public int NumSlots { get; }
    public int MaxTokensPerSlot { get; }
    public long Bytes { get; }
    public int FreeSlots => _free.Count;

    public KvCachePool(ModelConfig config, int numSlots, int maxTokensPerSlot, ScalarType dtype, Device? device = null)
    {
        if (numSlots <= 0) throw new ArgumentOutOfRangeException(nameof(numSlots));
        if (maxTokensPerSlot <= 0) throw new ArgumentOutOfRangeException(nameof(maxTokensPerSlot));
        NumSlots = numSlots;
        MaxTokensPerSlot = maxTokensPerSlot;
        int layers = config.NumHiddenLayers;
        _k = new Tensor[layers];
        _v = new Tensor[layers];
        for (int l = 0; l < layers; l++)
        {
            _k[l] = zeros([numSlots, config.NumKeyValueHeads, maxTokensPerSlot, config.HeadDim], dtype, device);
            _v[l] = zeros([numSlots, config.NumKeyValueHeads, maxTokensPerSlot, config.HeadDim], dtype, device);
        }
        Bytes = BytesFor(config, numSlots, maxTokensPerSlot, dtype);
        _inUse = new bool[numSlots];
        for (int s = numSlots - 1; s >= 0; s--) _free.Push(s);
    }

    public static long BytesFor(ModelConfig c, int numSlots, int maxTokensPerSlot, ScalarType dtype) =>
        2L * c.NumHiddenLayers * numSlots * c.NumKeyValueHeads * maxTokensPerSlot * c.HeadDim * (dtype == ScalarType.Float32 ? 4 : 2);

    /// <summary>The most slots of <paramref name="maxTokensPerSlot"/> that fit in <paramref name="budgetBytes"/>.</summary>
    public static int SlotsForBudget(ModelConfig c, long budgetBytes, int maxTokensPerSlot, ScalarType dtype) =>
        (int)Math.Max(0, budgetBytes / BytesFor(c, 1, maxTokensPerSlot, dtype));

    public bool TryAllocate(out int slot)
    {
        if (!_free.TryPop(out slot)) return false;
        _inUse[slot] = true;
        return true;
    }

    public int Allocate() => TryAllocate(out var s) ? s : throw new InvalidOperationException("no free KV slot");

    public void Free(int slot)
    {
        if ((uint)slot >= (uint)NumSlots) throw new ArgumentOutOfRangeException(nameof(slot));
        // A slot freed twice would be handed to two sequences that overwrite each other's keys and values.
        if (!_inUse[slot]) throw new InvalidOperationException($"KV slot {slot} is not allocated");
        _inUse[slot] = false;
        _free.Push(slot);
    }

    /// <summary>Layer <paramref name="layer"/>'s keys [slots, kv_heads, tokens, head_dim].</summary>
    public Tensor K(int layer) => _k[layer];
    public Tensor V(int layer) => _v[layer];

    public void Dispose()
    {
        foreach (var t in _k) t.Dispose();
        foreach (var t in _v) t.Dispose();
    }
}
