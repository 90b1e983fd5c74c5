namespace Memory3.Engine.Memory;

/// <summary>How a record's payload encodes its keys and values.</summary>
public enum PayloadKind : byte
{
    /// <summary>bf16 bits, keys then values, each [memory_layers, memory_kv_heads, tokens_per_head, head_dim].</summary>
    Bf16 = 0,
    /// <summary>Codes of the bank's quantizer (see Memory/Quantize), in the same vector order.</summary>
    Quantized = 1,
}

/// <summary>
/// One explicit memory as the tiers store it: the bytes the disk shards and Redis hold. The store never interprets
/// the payload; decoding belongs to an <see cref="IMemoryDecoder"/>.
/// </summary>
public sealed record MemoryRecord
{
    /// <summary>32 lowercase hex characters: a hash of the normalised reference text and the bank fingerprint.</summary>
    public required string Id { get; init; }
    public required string Namespace { get; init; }
    /// <summary>The reference text the memory was encoded from (for citations and re-indexing).</summary>
    public required string Text { get; init; }
    /// <summary>Encode positions of the selected tokens, [memory_layers, memory_kv_heads, tokens_per_head].</summary>
    public required ushort[] Positions { get; init; }
    public required PayloadKind Kind { get; init; }
    public required byte[] Payload { get; init; }
}

/// <summary>
/// A memory ready to be copied into KV slots by the engine thread: dequantized, as plain bf16 arrays (never tensors).
/// Keys and values are [memory_layers, memory_kv_heads, tokens_per_head, head_dim]; keys are already rotated.
/// </summary>
public sealed record DecodedMemory(string Id, string Namespace, string Text, ushort[] Positions, ushort[] Keys, ushort[] Values)
{
    /// <summary>Approximate bytes held in process (for the bounded in-process cache).</summary>
    public long ByteSize => 2L * (Keys.Length + Values.Length + Positions.Length) + 2L * (Text.Length + Id.Length + Namespace.Length) + 96;
}

/// <summary>Turns stored bytes into keys and values (bf16 pass-through or the bank's quantizer).</summary>
public interface IMemoryDecoder
{
    DecodedMemory Decode(MemoryRecord record);
}
