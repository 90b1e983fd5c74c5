namespace Memory3.Engine.Memory;

/// <summary>
/// The shape of one explicit memory: keys and values are each [Layers, KvHeads, TokensPerHead, HeadDim].
/// The paper's model: (22, 8, 8, 80) = 2,816 vectors (keys and values together).
/// </summary>
public sealed record MemoryShape(int Layers, int KvHeads, int TokensPerHead, int HeadDim)
{
    /// <summary>The paper's Memory3-2B shape.</summary>
    public static MemoryShape Paper { get; } = new(22, 8, 8, 80);

    /// <summary>Vectors per layer for keys (or for values): KvHeads × TokensPerHead.</summary>
    public int VectorsPerLayer => KvHeads * TokensPerHead;

    /// <summary>Key vectors in one memory (as many value vectors): Layers × KvHeads × TokensPerHead.</summary>
    public int VectorsPerKind => Layers * VectorsPerLayer;

    /// <summary>Elements of the keys array (or the values array).</summary>
    public int ElementsPerKind => VectorsPerKind * HeadDim;

    /// <summary>Length of <see cref="MemoryRecord.Positions"/>.</summary>
    public int PositionCount => VectorsPerKind;

    public override string ToString() => $"[layers {Layers}, kv_heads {KvHeads}, tokens_per_head {TokensPerHead}, head_dim {HeadDim}]";

    public void Validate()
    {
        if (Layers <= 0 || KvHeads <= 0 || TokensPerHead <= 0 || HeadDim <= 0)
            throw new ArgumentException($"Memory shape {this} must be positive in every dimension.");
    }
}
