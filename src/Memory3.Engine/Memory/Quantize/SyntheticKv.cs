using Memory3.Engine.Model;

namespace Memory3.Engine.Memory.Quantize;

/// <summary>
/// Synthetic attention-like K/V vectors for tests and benchmarks: x = μ + A·z + σ·ε with a per-dimension offset μ,
/// a random low-rank A (head_dim × 16, decaying column scales), z and ε standard normal, and two outlier dimensions
/// with a large offset and gain. Each (layer, K/V) has its own μ and A, fixed by the seed; memory i is a pure
/// function of (seed, i).
/// </summary>
public sealed class SyntheticKv
{
    public const int Rank = 16;
    public MemoryShape Shape { get; }
    private readonly int _seed;
    private readonly float[][] _mu;   // [layer*2+kind][dim]
    private readonly float[][] _a;    // [layer*2+kind][dim, Rank]
    private readonly float _noise;

    public SyntheticKv(MemoryShape shape, int seed = 1, float noise = 0.05f)
    {
        shape.Validate();
        Shape = shape; _seed = seed; _noise = noise;
        int dim = shape.HeadDim, n = shape.Layers * 2;
        _mu = new float[n][]; _a = new float[n][];
        var rng = new Random(seed);
        for (int q = 0; q < n; q++)
        {
            var mu = new float[dim]; var a = new float[dim * Rank];
            for (int d = 0; d < dim; d++) mu[d] = (float)(0.3 * Rotation.Gaussian(rng));
            for (int d = 0; d < dim; d++)
                for (int r = 0; r < Rank; r++)
                    a[d * Rank + r] = (float)(Rotation.Gaussian(rng) * Math.Pow(0.85, r) / Math.Sqrt(Rank));
            for (int o = 0; o < 2 && o < dim; o++)
            {
                int d = rng.Next(dim);
                mu[d] += (float)(o == 0 ? 4.0 : -3.0);
                for (int r = 0; r < Rank; r++) a[d * Rank + r] *= 4;
            }
            _mu[q] = mu; _a[q] = a;
        }
    }

    /// <summary>Row-major [count, head_dim] floats for one (layer, kind).</summary>
    public float[] Vectors(int layer, KvKind kind, int count, int sampleSeed)
    {
        var rng = new Random(unchecked(_seed * 31 + sampleSeed * 1_000_003 + layer * 2 + (int)kind));
        int dim = Shape.HeadDim;
        var x = new float[count * dim];
        Span<float> z = stackalloc float[Rank];
        var mu = _mu[layer * 2 + (int)kind]; var a = _a[layer * 2 + (int)kind];
        for (int i = 0; i < count; i++)
        {
            for (int r = 0; r < Rank; r++) z[r] = (float)Rotation.Gaussian(rng);
            for (int d = 0; d < dim; d++)
            {
                float s = mu[d] + _noise * (float)Rotation.Gaussian(rng);
                for (int r = 0; r < Rank; r++) s += a[d * Rank + r] * z[r];
                x[i * dim + d] = s;
            }
        }
        return x;
    }

    /// <summary>Memory number <paramref name="index"/> (bf16, the shape's layout, positions 0..).</summary>
    public DecodedMemory Memory(int index)
    {
        int per = Shape.VectorsPerLayer, dim = Shape.HeadDim;
        var keys = new ushort[Shape.ElementsPerKind];
        var values = new ushort[Shape.ElementsPerKind];
        for (int layer = 0; layer < Shape.Layers; layer++)
            for (int kind = 0; kind < 2; kind++)
            {
                var x = Vectors(layer, (KvKind)kind, per, index + 1);
                var dst = (kind == 0 ? keys : values).AsSpan(layer * per * dim, per * dim);
                for (int e = 0; e < x.Length; e++) dst[e] = BFloat16.FromFloat(x[e]);
            }
        var positions = new ushort[Shape.PositionCount];
        for (int i = 0; i < positions.Length; i++) positions[i] = (ushort)(5 + (i * 7 + index) % 128);
        string id = Convert.ToHexStringLower(BitConverter.GetBytes((long)index)).PadLeft(32, '0');
        return new DecodedMemory(id, "synthetic", $"synthetic reference {index}", positions, keys, values);
    }

    public IEnumerable<DecodedMemory> Memories(int first, int count)
    {
        for (int i = first; i < first + count; i++) yield return Memory(i);
    }
}
