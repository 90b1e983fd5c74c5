using System.Globalization;
using Memory3.Engine.Model;

namespace Memory3.Engine.Memory.Quantize;

/// <summary>Reconstruction error of one quantizer over a sample.</summary>
/// <param name="MeanRelativeError">Mean over vectors of ‖x − x̂‖/‖x‖ (vectors with ‖x‖ = 0 are skipped).</param>
/// <param name="SquaredNormRatio">Σ‖x − x̂‖² / Σ‖x‖².</param>
public readonly record struct QuantizationError(long Vectors, double MeanRelativeError, double SquaredNormRatio);

public sealed record LayerQuantizationError(int Layer, QuantizationError Keys, QuantizationError Values);

/// <summary>What a quantizer set costs and loses on a sample of memories (x̂ is the bf16 the codec decodes).</summary>
public sealed record QuantizationReport(string Description, int HeadDim, int BytesPerVector, double CompressionRatio,
    IReadOnlyList<LayerQuantizationError> Layers, QuantizationError AllKeys, QuantizationError AllValues)
{
    public static QuantizationReport Evaluate(QuantizerSet q, IEnumerable<DecodedMemory> sample)
    {
        var shape = InferShape(q, sample, out var memories);
        var codec = new QuantizedCodec(q, shape);
        int layers = shape.Layers, per = shape.VectorsPerLayer * shape.HeadDim, dim = shape.HeadDim;
        var acc = new Acc[layers * 2];
        foreach (var m in memories)
        {
            var back = codec.Decode(codec.Encode(m));
            for (int kind = 0; kind < 2; kind++)
            {
                var x = kind == 0 ? m.Keys : m.Values;
                var y = kind == 0 ? back.Keys : back.Values;
                for (int layer = 0; layer < layers; layer++)
                    for (int v = 0; v < shape.VectorsPerLayer; v++)
                    {
                        int o = layer * per + v * dim;
                        double n2 = 0, e2 = 0;
                        for (int d = 0; d < dim; d++)
                        {
                            double a = BFloat16.ToFloat(x[o + d]), b = BFloat16.ToFloat(y[o + d]);
                            n2 += a * a; e2 += (a - b) * (a - b);
                        }
                        acc[layer * 2 + kind].Add(n2, e2);
                    }
            }
        }
        var rows = new LayerQuantizationError[layers];
        Acc allK = default, allV = default;
        for (int layer = 0; layer < layers; layer++)
        {
            rows[layer] = new(layer, acc[layer * 2].Result, acc[layer * 2 + 1].Result);
            allK.Merge(acc[layer * 2]); allV.Merge(acc[layer * 2 + 1]);
        }
        return new QuantizationReport(q.Description, q.HeadDim, q.BytesPerVector, q.CompressionRatio, rows, allK.Result, allV.Result);
    }

    private static MemoryShape InferShape(QuantizerSet q, IEnumerable<DecodedMemory> sample, out List<DecodedMemory> memories)
    {
        memories = sample.ToList();
        if (memories.Count == 0) throw new ArgumentException("Cannot evaluate a quantizer on an empty sample.");
        var m = memories[0];
        int perLayer = m.Positions.Length / q.Layers;
        if (perLayer == 0 || m.Positions.Length % q.Layers != 0 || m.Keys.Length != m.Positions.Length * q.HeadDim)
            throw new ArgumentException($"Memory {m.Id} does not match the quantizer set ({q.Layers} layers, head_dim {q.HeadDim}).");
        // KvHeads × TokensPerHead is all the codec needs; record it as 1 head of perLayer tokens.
        return new MemoryShape(q.Layers, 1, perLayer, q.HeadDim);
    }

    public void WriteTo(TextWriter w)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(string.Format(c, "quantizer {0}: {1} bytes per {2}-dim vector, {3:F1}x vs bf16", Description, BytesPerVector, HeadDim, CompressionRatio));
        w.WriteLine("layer   K rel.err  K Σe²/Σx²   V rel.err  V Σe²/Σx²");
        foreach (var l in Layers)
            w.WriteLine(string.Format(c, "{0,5} {1,11:F4} {2,10:F5} {3,11:F4} {4,10:F5}", l.Layer, l.Keys.MeanRelativeError, l.Keys.SquaredNormRatio, l.Values.MeanRelativeError, l.Values.SquaredNormRatio));
        w.WriteLine(string.Format(c, "  all {0,11:F4} {1,10:F5} {2,11:F4} {3,10:F5}", AllKeys.MeanRelativeError, AllKeys.SquaredNormRatio, AllValues.MeanRelativeError, AllValues.SquaredNormRatio));
    }

    private struct Acc
    {
        private long _n, _counted; private double _rel, _e2, _x2;
        public void Add(double n2, double e2)
        {
            _n++; _e2 += e2; _x2 += n2;
            if (n2 > 0) { _rel += Math.Sqrt(e2 / n2); _counted++; }
        }
        public void Merge(Acc o) { _n += o._n; _counted += o._counted; _rel += o._rel; _e2 += o._e2; _x2 += o._x2; }
        public readonly QuantizationError Result => new(_n, _counted == 0 ? 0 : _rel / _counted, _x2 == 0 ? 0 : _e2 / _x2);
    }
}
