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

    /// <summary>Order-preserving image of a float as a uint (ascending with the float), branch-free. NaN lands above
    /// +inf (positive NaN) or below -inf (negative NaN); callers that sort use <see cref="Key"/>, which maps NaN as -inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Ord(float f)
    {
        uint b = BitConverter.SingleToUInt32Bits(f);
        return b ^ ((uint)((int)b >> 31) | 0x8000_0000u);
    }

    /// <summary>The smallest float whose <see cref="Ord"/> is at least <paramref name="ord"/> (-inf below the finite range).</summary>
    public static float FromOrd(uint ord)
    {
        uint b = (ord & 0x8000_0000u) != 0 ? ord ^ 0x8000_0000u : ~ord;
        float f = BitConverter.UInt32BitsToSingle(b);
        return float.IsNaN(f) ? float.NegativeInfinity : f;
    }

    /// <summary>Radix buckets over the top bits of <see cref="Ord"/>: sign, exponent and 3 mantissa bits.</summary>
    public const int BucketBits = 12;
    public const int BucketCount = 1 << BucketBits;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Bucket(float f) => (int)(Ord(f) >> (32 - BucketBits));

    /// <summary>
    /// Sort key whose ascending order is descending logit, ties broken by ascending token id (NaN sorts as -inf).
    /// High 32 bits: the complemented <see cref="Ord"/> of the float; low 32 bits: the id.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Key(float logit, int id)
    {
        if (float.IsNaN(logit)) logit = float.NegativeInfinity;
        return ((ulong)~Ord(logit) << 32) | (uint)id;
    }

    /// <summary>
    /// Writes the keys of every token whose logit is at least the smallest value of bucket <paramref name="minBucket"/>
    /// (a superset of the tokens in buckets ≥ minBucket; NaN never qualifies); returns how many. Vectorised scan.
    /// </summary>
    public static int CollectKeys(ReadOnlySpan<float> logits, int minBucket, Span<ulong> keys)
    {
        float t = minBucket == 0 ? float.NegativeInfinity : FromOrd((uint)minBucket << (32 - BucketBits));
        int vs = Vector<float>.Count, i = 0, c = 0;
        var vt = new Vector<float>(t);
        for (; i + vs <= logits.Length; i += vs)
        {
            if (!Vector.GreaterThanOrEqualAny(new Vector<float>(logits.Slice(i)), vt)) continue;
            for (int j = i; j < i + vs; j++)
                if (logits[j] >= t) keys[c++] = Key(logits[j], j);
        }
        for (; i < logits.Length; i++)
            if (logits[i] >= t) keys[c++] = Key(logits[i], i);
        return c;
    }

    /// <summary>Highest bucket b such that the buckets b and above hold at least k tokens.</summary>
    public static int BucketOfKth(ReadOnlySpan<float> logits, int k, Span<int> hist)
    {
        hist.Clear();
        for (int i = 0; i < logits.Length; i++) hist[Bucket(logits[i])]++;
        int cum = 0;
        for (int b = hist.Length - 1; b > 0; b--)
        {
            cum += hist[b];
            if (cum >= k) return b;
        }
        return 0;
    }

    /// <summary>Highest bucket b such that the weights of buckets b and above sum to at least <paramref name="target"/>.</summary>
    public static int BucketOfMass(ReadOnlySpan<float> logits, ReadOnlySpan<float> w, double target, Span<double> mass)
    {
        mass.Clear();
        for (int i = 0; i < logits.Length; i++) mass[Bucket(logits[i])] += w[i];
        double cum = 0;
        for (int b = mass.Length - 1; b > 0; b--)
        {
            cum += mass[b];
            if (cum >= target) return b;
        }
        return 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int KeyId(ulong key) => (int)(uint)key;

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
