using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Memory3.Engine.Model.Sampling;

/// <summary>SIMD kernels over a vocabulary-sized float span, and a partial selection over packed sort keys.</summary>
internal static class SamplingMath
{
    /// <summary>Largest value and the lowest index holding it (NaNs are skipped). Returns -inf and 0 when none is a number.</summary>
    public static float MaxArg(ReadOnlySpan<float> x, out int argmax)
    {
        int vs = Vector<float>.Count, i = 0;
        float max = float.NegativeInfinity;
        if (x.Length >= vs)
        {
            var vmax = new Vector<float>(float.NegativeInfinity);
            for (; i + vs <= x.Length; i += vs)
            {
                var v = new Vector<float>(x.Slice(i));
                // Keep the running max where v is NaN (v > vmax is false for NaN).
                vmax = Vector.ConditionalSelect(Vector.GreaterThan(v, vmax), v, vmax);
            }
            for (int l = 0; l < vs; l++) if (vmax[l] > max) max = vmax[l];
        }
        for (; i < x.Length; i++) if (x[i] > max) max = x[i];

        // First index equal to max (float equality: -0 == +0).
        i = 0;
        var vm = new Vector<float>(max);
        for (; i + vs <= x.Length; i += vs)
            if (Vector.EqualsAny(new Vector<float>(x.Slice(i)), vm)) break;
        for (; i < x.Length; i++)
            if (x[i] == max) { argmax = i; return max; }
        argmax = 0;
        return max;
    }

    /// <summary>
    /// Sum of exp((x - m) * scale), with terms below <paramref name="minKeep"/> counted (and stored) as 0; the terms go
    /// to <paramref name="dest"/> unless it is empty. Float lanes, summed to double per 1024 elements.
    /// </summary>
    public static double ExpSum(ReadOnlySpan<float> x, float m, float scale, float minKeep, Span<float> dest)
    {
        bool store = !dest.IsEmpty;
        bool filter = minKeep > 0;
        int vs = Vector<float>.Count, i = 0;
        var vm = new Vector<float>(m);
        var vsc = new Vector<float>(scale);
        var vmin = new Vector<float>(minKeep);
        double total = 0;
        const int Block = 1024;
        while (i < x.Length)
        {
            int end = Math.Min(x.Length, i + Block);
            var acc = Vector<float>.Zero;
            for (; i + vs <= end; i += vs)
            {
                var v = Vector.Exp((new Vector<float>(x.Slice(i)) - vm) * vsc);
                if (filter) v = Vector.ConditionalSelect(Vector.GreaterThanOrEqual(v, vmin), v, Vector<float>.Zero);
                if (store) v.CopyTo(dest.Slice(i));
                acc += v;
            }
            float tail = 0;
            for (; i < end; i++)
            {
                float e = MathF.Exp((x[i] - m) * scale);
                if (e < minKeep) e = 0;
                if (store) dest[i] = e;
                tail += e;
            }
            total += (double)Vector.Sum(acc) + tail;
        }
        return total;
    }

    /// <summary>
    /// Inverse-CDF draw: the first index whose running sum of <paramref name="w"/> exceeds <paramref name="u"/>
    /// (u in [0, sum)); zero weights are never chosen. Rounding past the end falls back to the last positive weight.
    /// </summary>
    public static int Walk(ReadOnlySpan<float> w, double u)
    {
        int vs = Vector<float>.Count, i = 0;
        double cum = 0;
        for (; i + vs <= w.Length; i += vs)
        {
            double s = Vector.Sum(new Vector<float>(w.Slice(i)));
            if (cum + s > u) break;
            cum += s;
        }
        for (; i < w.Length; i++)
        {
            float e = w[i];
            cum += e;
            if (cum > u && e > 0) return i;
        }
        for (int j = w.Length - 1; j >= 0; j--) if (w[j] > 0) return j;
        return -1;
    }

    /// <summary>
    /// Sort key whose ascending order is descending logit, ties broken by ascending token id (NaN sorts as -inf).
    /// High 32 bits: the complemented order-preserving image of the float; low 32 bits: the id.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Key(float logit, int id)
    {
        if (float.IsNaN(logit)) logit = float.NegativeInfinity;
        uint b = BitConverter.SingleToUInt32Bits(logit);
        uint ord = (b & 0x8000_0000u) != 0 ? ~b : b | 0x8000_0000u;
        return ((ulong)~ord << 32) | (uint)id;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int KeyId(ulong key) => (int)(uint)key;

    public static void BuildKeys(ReadOnlySpan<float> logits, Span<ulong> keys)
    {
        for (int i = 0; i < logits.Length; i++) keys[i] = Key(logits[i], i);
    }

    /// <summary>
    /// Partial selection (Hoare quickselect, median-of-three): afterwards <c>a[..k]</c> holds the k smallest keys,
    /// in no particular order. Expected O(n); keys are distinct (they carry the id).
    /// </summary>
    public static void SelectSmallest(Span<ulong> a, int k)
    {
        if (k <= 0 || k >= a.Length) return;
        int target = k - 1, lo = 0, hi = a.Length - 1;
        ref ulong r = ref MemoryMarshal.GetReference(a);
        while (hi > lo)
        {
            if (hi - lo < 24)
            {
                a.Slice(lo, hi - lo + 1).Sort();
                return;
            }
            int mid = lo + ((hi - lo) >> 1);
            ulong x = Unsafe.Add(ref r, lo), y = Unsafe.Add(ref r, mid), z = Unsafe.Add(ref r, hi);
            ulong pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
            int i = lo, j = hi;
            while (i <= j)
            {
                while (Unsafe.Add(ref r, i) < pivot) i++;
                while (Unsafe.Add(ref r, j) > pivot) j--;
                if (i <= j)
                {
                    (Unsafe.Add(ref r, i), Unsafe.Add(ref r, j)) = (Unsafe.Add(ref r, j), Unsafe.Add(ref r, i));
                    i++;
                    j--;
                }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return;
        }
    }
}
