using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Memory3.Engine.Memory.Quantize;

/// <summary>
/// K centroids of dimension Dim, kept twice: row-major [K, Dim] for decoding, and transposed, padded to a multiple of
/// 64 columns ([Dim, KPad]) with squared norms, for the nearest-centroid search (SIMD over centroids, so any Dim works).
/// </summary>
public sealed class Codebook
{
    private const int Pad = 64;
    public int K { get; }
    public int Dim { get; }
    /// <summary>Row-major [K, Dim].</summary>
    public float[] Centroids { get; }
    private readonly int _kPad;
    private readonly float[] _transposed; // [Dim, KPad]
    private readonly float[] _halfNorms;  // [KPad]: ||c||²/2; padding columns are +large so they never win

    public Codebook(int k, int dim, float[] centroids)
    {
        if (k <= 0 || dim <= 0 || centroids.Length != k * dim) throw new ArgumentException($"Codebook needs {k}×{dim} floats, got {centroids.Length}.");
        K = k; Dim = dim; Centroids = centroids;
        _kPad = (k + Pad - 1) / Pad * Pad;
        _transposed = new float[dim * _kPad];
        _halfNorms = new float[_kPad];
        _halfNorms.AsSpan(k).Fill(float.MaxValue / 4);
        for (int j = 0; j < k; j++)
        {
            double n = 0;
            for (int d = 0; d < dim; d++)
            {
                float c = centroids[j * dim + d];
                _transposed[d * _kPad + j] = c;
                n += (double)c * c;
            }
            _halfNorms[j] = (float)(n / 2);
        }
    }

    public ReadOnlySpan<float> Row(int j) => Centroids.AsSpan(j * Dim, Dim);

    /// <summary>Index of the centroid nearest to <paramref name="x"/> (ties: the lowest index).</summary>
    public int Nearest(ReadOnlySpan<float> x)
    {
        if (x.Length != Dim) throw new ArgumentException($"Vector has {x.Length} dims, codebook {Dim}.");
        if (Vector512.IsHardwareAccelerated) return Nearest512(x);
        if (Vector256.IsHardwareAccelerated) return Nearest256(x);
        return NearestScalar(x);
    }

    /// <summary>Exact squared distance from x to centroid j.</summary>
    public float Distance2(ReadOnlySpan<float> x, int j)
    {
        var c = Row(j);
        float s = 0;
        for (int d = 0; d < c.Length; d++) { float t = x[d] - c[d]; s += t * t; }
        return s;
    }

    // score_j = ||c_j||²/2 − x·c_j; the argmin of the score is the nearest centroid.
    private int Nearest512(ReadOnlySpan<float> x)
    {
        ref float t = ref MemoryMarshal.GetArrayDataReference(_transposed);
        ref float h = ref MemoryMarshal.GetArrayDataReference(_halfNorms);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int dim = Dim, kPad = _kPad;
        var bestV = Vector512.Create(float.MaxValue);
        var bestI = Vector512<int>.Zero;
        var iota = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for (int j0 = 0; j0 < kPad; j0 += 64)
        {
            var a0 = Vector512.LoadUnsafe(ref h, (nuint)j0);
            var a1 = Vector512.LoadUnsafe(ref h, (nuint)(j0 + 16));
            var a2 = Vector512.LoadUnsafe(ref h, (nuint)(j0 + 32));
            var a3 = Vector512.LoadUnsafe(ref h, (nuint)(j0 + 48));
            for (int d = 0; d < dim; d++)
            {
                var xv = Vector512.Create(-Unsafe.Add(ref xr, d));
                nuint o = (nuint)(d * kPad + j0);
                a0 = Vector512.FusedMultiplyAdd(xv, Vector512.LoadUnsafe(ref t, o), a0);
                a1 = Vector512.FusedMultiplyAdd(xv, Vector512.LoadUnsafe(ref t, o + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(xv, Vector512.LoadUnsafe(ref t, o + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(xv, Vector512.LoadUnsafe(ref t, o + 48), a3);
            }
            Take(a0, iota + Vector512.Create(j0), ref bestV, ref bestI);
            Take(a1, iota + Vector512.Create(j0 + 16), ref bestV, ref bestI);
            Take(a2, iota + Vector512.Create(j0 + 32), ref bestV, ref bestI);
            Take(a3, iota + Vector512.Create(j0 + 48), ref bestV, ref bestI);
        }
        return Reduce(bestV, bestI);

        static void Take(Vector512<float> a, Vector512<int> idx, ref Vector512<float> bv, ref Vector512<int> bi)
        {
            var lt = Vector512.LessThan(a, bv);
            bv = Vector512.ConditionalSelect(lt, a, bv);
            bi = Vector512.ConditionalSelect(lt.AsInt32(), idx, bi);
        }
        static int Reduce(Vector512<float> bv, Vector512<int> bi)
        {
            float best = float.MaxValue; int arg = int.MaxValue;
            for (int i = 0; i < 16; i++)
            {
                float v = bv.GetElement(i); int ix = bi.GetElement(i);
                if (v < best || (v == best && ix < arg)) { best = v; arg = ix; }
            }
            return arg;
        }
    }

    private int Nearest256(ReadOnlySpan<float> x)
    {
        ref float t = ref MemoryMarshal.GetArrayDataReference(_transposed);
        ref float h = ref MemoryMarshal.GetArrayDataReference(_halfNorms);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int dim = Dim, kPad = _kPad;
        var bestV = Vector256.Create(float.MaxValue);
        var bestI = Vector256<int>.Zero;
        var iota = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        for (int j0 = 0; j0 < kPad; j0 += 32)
        {
            var a0 = Vector256.LoadUnsafe(ref h, (nuint)j0);
            var a1 = Vector256.LoadUnsafe(ref h, (nuint)(j0 + 8));
            var a2 = Vector256.LoadUnsafe(ref h, (nuint)(j0 + 16));
            var a3 = Vector256.LoadUnsafe(ref h, (nuint)(j0 + 24));
            for (int d = 0; d < dim; d++)
            {
                var xv = Vector256.Create(-Unsafe.Add(ref xr, d));
                nuint o = (nuint)(d * kPad + j0);
                a0 = Vector256.FusedMultiplyAdd(xv, Vector256.LoadUnsafe(ref t, o), a0);
                a1 = Vector256.FusedMultiplyAdd(xv, Vector256.LoadUnsafe(ref t, o + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(xv, Vector256.LoadUnsafe(ref t, o + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(xv, Vector256.LoadUnsafe(ref t, o + 24), a3);
            }
            Take(a0, iota + Vector256.Create(j0), ref bestV, ref bestI);
            Take(a1, iota + Vector256.Create(j0 + 8), ref bestV, ref bestI);
            Take(a2, iota + Vector256.Create(j0 + 16), ref bestV, ref bestI);
            Take(a3, iota + Vector256.Create(j0 + 24), ref bestV, ref bestI);
        }
        float best = float.MaxValue; int arg = int.MaxValue;
        for (int i = 0; i < 8; i++)
        {
            float v = bestV.GetElement(i); int ix = bestI.GetElement(i);
            if (v < best || (v == best && ix < arg)) { best = v; arg = ix; }
        }
        return arg;

        static void Take(Vector256<float> a, Vector256<int> idx, ref Vector256<float> bv, ref Vector256<int> bi)
        {
            var lt = Vector256.LessThan(a, bv);
            bv = Vector256.ConditionalSelect(lt, a, bv);
            bi = Vector256.ConditionalSelect(lt.AsInt32(), idx, bi);
        }
    }

    private int NearestScalar(ReadOnlySpan<float> x)
    {
        float best = float.MaxValue; int arg = 0;
        for (int j = 0; j < K; j++)
        {
            float s = _halfNorms[j];
            for (int d = 0; d < Dim; d++) s -= x[d] * _transposed[d * _kPad + j];
            if (s < best) { best = s; arg = j; }
        }
        return arg;
    }
}
