using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Memory3.Engine.Model;

namespace Memory3.Engine.Memory.Quantize;

/// <summary>
/// The unquantized mode: payload = keys then values, raw bf16 bits little-endian, each
/// [layers, kv_heads, tokens_per_head, head_dim]. Decodes only <see cref="PayloadKind.Bf16"/> records.
/// </summary>
public sealed class Bf16Codec(MemoryShape shape) : IMemoryDecoder
{
    public MemoryShape Shape { get; } = Validated(shape);

    public MemoryRecord Encode(DecodedMemory m)
    {
        Codec.CheckShape(Shape, m);
        var payload = new byte[4L * Shape.ElementsPerKind];
        MemoryMarshal.AsBytes(m.Keys.AsSpan()).CopyTo(payload);
        MemoryMarshal.AsBytes(m.Values.AsSpan()).CopyTo(payload.AsSpan(2 * Shape.ElementsPerKind));
        return Codec.Record(m, PayloadKind.Bf16, payload);
    }

    public DecodedMemory Decode(MemoryRecord record)
    {
        Codec.CheckRecord(Shape, record, PayloadKind.Bf16, 4L * Shape.ElementsPerKind);
        int n = Shape.ElementsPerKind;
        var keys = MemoryMarshal.Cast<byte, ushort>(record.Payload.AsSpan(0, 2 * n)).ToArray();
        var values = MemoryMarshal.Cast<byte, ushort>(record.Payload.AsSpan(2 * n, 2 * n)).ToArray();
        return new DecodedMemory(record.Id, record.Namespace, record.Text, record.Positions, keys, values);
    }

    private static MemoryShape Validated(MemoryShape s) { s.Validate(); return s; }
}

/// <summary>
/// The quantized mode: payload = the codes of every key vector in [layer, kv_head, token] order, then those of every
/// value vector in the same order; each code is <see cref="QuantizerSet.BytesPerVector"/> bytes.
/// Decodes only <see cref="PayloadKind.Quantized"/> records.
/// </summary>
public sealed class QuantizedCodec : IMemoryDecoder
{
    public MemoryShape Shape { get; }
    public QuantizerSet Quantizers { get; }

    public QuantizedCodec(QuantizerSet quantizers, MemoryShape shape)
    {
        shape.Validate();
        if (quantizers.Layers != shape.Layers || quantizers.HeadDim != shape.HeadDim)
            throw new ArgumentException($"The quantizer set covers {quantizers.Layers} layers of head_dim {quantizers.HeadDim}; memories are {shape}.");
        Quantizers = quantizers; Shape = shape;
    }

    public long PayloadBytes => 2L * Shape.VectorsPerKind * Quantizers.BytesPerVector;

    public MemoryRecord Encode(DecodedMemory m)
    {
        Codec.CheckShape(Shape, m);
        var payload = new byte[PayloadBytes];
        int per = Shape.VectorsPerLayer, dim = Shape.HeadDim, bpv = Quantizers.BytesPerVector;
        Parallel.For(0, 2 * Shape.Layers, job =>
        {
            int kind = job / Shape.Layers, layer = job % Shape.Layers;
            var q = Quantizers.Get(layer, (KvKind)kind);
            var src = (kind == 0 ? m.Keys : m.Values).AsSpan(layer * per * dim, per * dim);
            var codes = payload.AsSpan((kind * Shape.VectorsPerKind + layer * per) * bpv, per * bpv);
            Span<float> x = dim <= 512 ? stackalloc float[dim] : new float[dim];
            for (int v = 0; v < per; v++)
            {
                var bits = src.Slice(v * dim, dim);
                for (int d = 0; d < dim; d++) x[d] = BFloat16.ToFloat(bits[d]);
                q.Encode(x, codes.Slice(v * bpv, bpv));
            }
        });
        return Codec.Record(m, PayloadKind.Quantized, payload);
    }

    public DecodedMemory Decode(MemoryRecord record)
    {
        Codec.CheckRecord(Shape, record, PayloadKind.Quantized, PayloadBytes);
        int per = Shape.VectorsPerLayer, dim = Shape.HeadDim, bpv = Quantizers.BytesPerVector;
        var keys = new ushort[Shape.ElementsPerKind];
        var values = new ushort[Shape.ElementsPerKind];
        float[] scratch = System.Buffers.ArrayPool<float>.Shared.Rent(per * dim);
        try
        {
            for (int kind = 0; kind < 2; kind++)
                for (int layer = 0; layer < Shape.Layers; layer++)
                {
                    var codes = record.Payload.AsSpan((kind * Shape.VectorsPerKind + layer * per) * bpv, per * bpv);
                    var x = scratch.AsSpan(0, per * dim);
                    Quantizers.Get(layer, (KvKind)kind).Decode(codes, per, x);
                    Codec.ToBf16(x, (kind == 0 ? keys : values).AsSpan(layer * per * dim, per * dim));
                }
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(scratch); }
        return new DecodedMemory(record.Id, record.Namespace, record.Text, record.Positions, keys, values);
    }
}

/// <summary>
/// Decodes records of either kind: bf16 records always, quantized records with the bank's quantizer set.
/// </summary>
public sealed class MemoryCodec : IMemoryDecoder
{
    private readonly Bf16Codec _bf16;
    private readonly QuantizedCodec? _quantized;

    private MemoryCodec(MemoryShape shape, QuantizerSet? quantizers)
    {
        _bf16 = new Bf16Codec(shape);
        _quantized = quantizers is null ? null : new QuantizedCodec(quantizers, shape);
    }

    /// <summary>A decoder for the bank: bf16 records always decode; quantized ones need <paramref name="quantizers"/>.</summary>
    public static MemoryCodec For(MemoryShape shape, QuantizerSet? quantizers) => new(shape, quantizers);

    public DecodedMemory Decode(MemoryRecord record) => record.Kind switch
    {
        PayloadKind.Bf16 => _bf16.Decode(record),
        PayloadKind.Quantized when _quantized is not null => _quantized.Decode(record),
        PayloadKind.Quantized => throw new InvalidOperationException(
            $"Memory {record.Id} is quantized, but the bank has no quantizer loaded ({QuantizerSet.FileName} is missing from the bank directory); it cannot be decoded."),
        _ => throw new InvalidDataException($"Memory {record.Id} has unknown payload kind {(byte)record.Kind}."),
    };
}

internal static class Codec
{
    public static void CheckShape(MemoryShape shape, DecodedMemory m)
    {
        if (m.Keys.Length != shape.ElementsPerKind || m.Values.Length != shape.ElementsPerKind)
            throw new ArgumentException($"Memory {m.Id} has {m.Keys.Length} key and {m.Values.Length} value elements; shape {shape} needs {shape.ElementsPerKind} each.");
        if (m.Positions.Length != shape.PositionCount)
            throw new ArgumentException($"Memory {m.Id} has {m.Positions.Length} positions; shape {shape} needs {shape.PositionCount}.");
    }

    public static void CheckRecord(MemoryShape shape, MemoryRecord r, PayloadKind kind, long payloadBytes)
    {
        if (r.Kind != kind)
            throw new InvalidOperationException($"Memory {r.Id} has a {r.Kind} payload; this codec decodes only {kind} payloads (use MemoryCodec.For to decode both).");
        if (r.Payload.Length != payloadBytes)
            throw new InvalidDataException($"Memory {r.Id}: {kind} payload is {r.Payload.Length} bytes; shape {shape} needs {payloadBytes}.");
        if (r.Positions.Length != shape.PositionCount)
            throw new InvalidDataException($"Memory {r.Id} has {r.Positions.Length} positions; shape {shape} needs {shape.PositionCount}.");
    }

    public static MemoryRecord Record(DecodedMemory m, PayloadKind kind, byte[] payload) => new()
    {
        Id = m.Id, Namespace = m.Namespace, Text = m.Text, Positions = m.Positions, Kind = kind, Payload = payload,
    };

    /// <summary>float32 → bf16 bits, round to nearest even (finite inputs; NaN handled on the scalar tail only).</summary>
    public static void ToBf16(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var bias = Vector512.Create(0x7FFFu);
            var one = Vector512.Create(1u);
            for (; i + 32 <= src.Length; i += 32)
            {
                var a = Vector512.Create(src.Slice(i, 16)).AsUInt32();
                var b = Vector512.Create(src.Slice(i + 16, 16)).AsUInt32();
                a = Vector512.ShiftRightLogical(a + bias + (Vector512.ShiftRightLogical(a, 16) & one), 16);
                b = Vector512.ShiftRightLogical(b + bias + (Vector512.ShiftRightLogical(b, 16) & one), 16);
                Vector512.Narrow(a, b).CopyTo(dst.Slice(i, 32));
            }
        }
        for (; i < src.Length; i++) dst[i] = BFloat16.FromFloat(src[i]);
    }
}
