using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Memory3.Engine.Memory.Store;

/// <summary>
/// Decodes <see cref="PayloadKind.Bf16"/> payloads: the payload is keys then values, each half of it, as little-endian
/// bf16 bits. Any other kind needs the bank's quantizer and is refused.
/// </summary>
public sealed class Bf16Decoder : IMemoryDecoder
{
    public static readonly Bf16Decoder Instance = new();

    public DecodedMemory Decode(MemoryRecord record)
    {
        if (record.Kind != PayloadKind.Bf16)
            throw new NotSupportedException($"Memory {record.Id} has payload kind {record.Kind}; {nameof(Bf16Decoder)} decodes only {PayloadKind.Bf16}.");
        if (record.Payload.Length % 4 != 0)
            throw new InvalidDataException($"Memory {record.Id}: a bf16 payload of {record.Payload.Length} bytes cannot split into equal keys and values.");
        int half = record.Payload.Length / 2;
        return new DecodedMemory(record.Id, record.Namespace, record.Text, record.Positions,
            ToUShorts(record.Payload.AsSpan(0, half)), ToUShorts(record.Payload.AsSpan(half)));
    }

    private static ushort[] ToUShorts(ReadOnlySpan<byte> bytes)
    {
        var result = new ushort[bytes.Length / 2];
        if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        else for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]);
        return result;
    }
}
