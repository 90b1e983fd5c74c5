using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Memory3.Engine.Model.Kernels;

/// <summary>A compile-time integer for specializing generic kernels (the JIT folds <c>T.N</c> per value type).</summary>
internal interface IConst { static abstract int N { get; } }
internal struct C0 : IConst { public static int N => 0; }
internal struct C1 : IConst { public static int N => 1; }
internal struct C2 : IConst { public static int N => 2; }
internal struct C3 : IConst { public static int N => 3; }
internal struct C4 : IConst { public static int N => 4; }
internal struct C5 : IConst { public static int N => 5; }
internal struct C6 : IConst { public static int N => 6; }
internal struct C7 : IConst { public static int N => 7; }
internal struct C8 : IConst { public static int N => 8; }

/// <summary>
/// The inner loop of <see cref="Bf16Gemv"/>: TW consecutive weight rows (bf16) against TR rows of x, over the
/// first <c>nChunks * 32</c> input features.
/// bf16 pairs are read as 32-bit words: <c>word &lt;&lt; 16</c> is the even element as float32 and
/// <c>word &amp; 0xFFFF0000</c> the odd one, so x is stored de-interleaved per 32-feature chunk
/// (<c>xp[c * xStride + r * 32 + 0..15]</c> = x[r, 32c + 0, 2, .., 30], <c>+ 16..31</c> = x[r, 32c + 1, 3, .., 31]).
/// Each weight vector is loaded once and used for all TR rows; each x vector is loaded once per TW weight rows.
/// Accumulators a{w}{r}: TW = 4 with TR &lt;= 4, TW &lt;= 2 with TR &lt;= 8 (at most 16 live accumulators).
/// Writes the horizontal sums to <c>sums[w * 8 + r]</c> (in fours: rows TR..3 and TR..7 get zeros).
/// </summary>
internal static unsafe class Bf16GemvMicroKernel
{
    /// <summary>Software prefetch distance in bf16 elements: TP.N = 1 prefetches to L1, 2 to L2, 0 not at all.</summary>
    internal static int PrefetchDistance = 4096;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot<TR, TW, TP>(ushort* w, int inFeatures, int nChunks, float* xp, int xStride, float* sums)
        where TR : struct, IConst where TW : struct, IConst where TP : struct, IConst
    {
        var hiMask = Vector512.Create(0xFFFF_0000u);
        ushort* w0 = w, w1 = w + inFeatures, w2 = w + 2 * (nint)inFeatures, w3 = w + 3 * (nint)inFeatures;
        Vector512<float> a00 = default, a10 = default, a20 = default, a30 = default, a01 = default, a11 = default, a21 = default, a31 = default, a02 = default, a12 = default, a22 = default, a32 = default, a03 = default, a13 = default, a23 = default, a33 = default, a04 = default, a14 = default, a05 = default, a15 = default, a06 = default, a16 = default, a07 = default, a17 = default;
        for (int c = 0; c < nChunks; c++, xp += xStride)
        {
            int k = c * 32;
            if (TP.N == 1)
            {
                Sse.Prefetch0(w0 + k + PrefetchDistance);
                if (TW.N > 1) Sse.Prefetch0(w1 + k + PrefetchDistance);
                if (TW.N > 2) Sse.Prefetch0(w2 + k + PrefetchDistance);
                if (TW.N > 3) Sse.Prefetch0(w3 + k + PrefetchDistance);
            }
            else if (TP.N == 2)
            {
                Sse.Prefetch1(w0 + k + PrefetchDistance);
                if (TW.N > 1) Sse.Prefetch1(w1 + k + PrefetchDistance);
                if (TW.N > 2) Sse.Prefetch1(w2 + k + PrefetchDistance);
                if (TW.N > 3) Sse.Prefetch1(w3 + k + PrefetchDistance);
            }
            var v0 = Vector512.Load((uint*)(w0 + k));
            var e0 = (v0 << 16).AsSingle(); var o0 = (v0 & hiMask).AsSingle();
            Vector512<float> e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
            if (TW.N > 1) { var v1 = Vector512.Load((uint*)(w1 + k)); e1 = (v1 << 16).AsSingle(); o1 = (v1 & hiMask).AsSingle(); }
            if (TW.N > 2) { var v2 = Vector512.Load((uint*)(w2 + k)); e2 = (v2 << 16).AsSingle(); o2 = (v2 & hiMask).AsSingle(); }
            if (TW.N > 3) { var v3 = Vector512.Load((uint*)(w3 + k)); e3 = (v3 << 16).AsSingle(); o3 = (v3 & hiMask).AsSingle(); }
            var xe0 = Vector512.Load(xp + 0); var xo0 = Vector512.Load(xp + 16);
            a00 = Avx512F.FusedMultiplyAdd(e0, xe0, a00);
            if (TW.N > 1) a10 = Avx512F.FusedMultiplyAdd(e1, xe0, a10);
            if (TW.N > 2) a20 = Avx512F.FusedMultiplyAdd(e2, xe0, a20);
            if (TW.N > 3) a30 = Avx512F.FusedMultiplyAdd(e3, xe0, a30);
            a00 = Avx512F.FusedMultiplyAdd(o0, xo0, a00);
            if (TW.N > 1) a10 = Avx512F.FusedMultiplyAdd(o1, xo0, a10);
            if (TW.N > 2) a20 = Avx512F.FusedMultiplyAdd(o2, xo0, a20);
            if (TW.N > 3) a30 = Avx512F.FusedMultiplyAdd(o3, xo0, a30);
            if (TR.N > 1)
            {
                var xe1 = Vector512.Load(xp + 32); var xo1 = Vector512.Load(xp + 48);
                a01 = Avx512F.FusedMultiplyAdd(e0, xe1, a01);
                if (TW.N > 1) a11 = Avx512F.FusedMultiplyAdd(e1, xe1, a11);
                if (TW.N > 2) a21 = Avx512F.FusedMultiplyAdd(e2, xe1, a21);
                if (TW.N > 3) a31 = Avx512F.FusedMultiplyAdd(e3, xe1, a31);
                a01 = Avx512F.FusedMultiplyAdd(o0, xo1, a01);
                if (TW.N > 1) a11 = Avx512F.FusedMultiplyAdd(o1, xo1, a11);
                if (TW.N > 2) a21 = Avx512F.FusedMultiplyAdd(o2, xo1, a21);
                if (TW.N > 3) a31 = Avx512F.FusedMultiplyAdd(o3, xo1, a31);
            }
            if (TR.N > 2)
            {
                var xe2 = Vector512.Load(xp + 64); var xo2 = Vector512.Load(xp + 80);
                a02 = Avx512F.FusedMultiplyAdd(e0, xe2, a02);
                if (TW.N > 1) a12 = Avx512F.FusedMultiplyAdd(e1, xe2, a12);
                if (TW.N > 2) a22 = Avx512F.FusedMultiplyAdd(e2, xe2, a22);
                if (TW.N > 3) a32 = Avx512F.FusedMultiplyAdd(e3, xe2, a32);
                a02 = Avx512F.FusedMultiplyAdd(o0, xo2, a02);
                if (TW.N > 1) a12 = Avx512F.FusedMultiplyAdd(o1, xo2, a12);
                if (TW.N > 2) a22 = Avx512F.FusedMultiplyAdd(o2, xo2, a22);
                if (TW.N > 3) a32 = Avx512F.FusedMultiplyAdd(o3, xo2, a32);
            }
            if (TR.N > 3)
            {
                var xe3 = Vector512.Load(xp + 96); var xo3 = Vector512.Load(xp + 112);
                a03 = Avx512F.FusedMultiplyAdd(e0, xe3, a03);
                if (TW.N > 1) a13 = Avx512F.FusedMultiplyAdd(e1, xe3, a13);
                if (TW.N > 2) a23 = Avx512F.FusedMultiplyAdd(e2, xe3, a23);
                if (TW.N > 3) a33 = Avx512F.FusedMultiplyAdd(e3, xe3, a33);
                a03 = Avx512F.FusedMultiplyAdd(o0, xo3, a03);
                if (TW.N > 1) a13 = Avx512F.FusedMultiplyAdd(o1, xo3, a13);
                if (TW.N > 2) a23 = Avx512F.FusedMultiplyAdd(o2, xo3, a23);
                if (TW.N > 3) a33 = Avx512F.FusedMultiplyAdd(o3, xo3, a33);
            }
            if (TR.N > 4)
            {
                var xe4 = Vector512.Load(xp + 128); var xo4 = Vector512.Load(xp + 144);
                a04 = Avx512F.FusedMultiplyAdd(e0, xe4, a04);
                if (TW.N > 1) a14 = Avx512F.FusedMultiplyAdd(e1, xe4, a14);
                a04 = Avx512F.FusedMultiplyAdd(o0, xo4, a04);
                if (TW.N > 1) a14 = Avx512F.FusedMultiplyAdd(o1, xo4, a14);
            }
            if (TR.N > 5)
            {
                var xe5 = Vector512.Load(xp + 160); var xo5 = Vector512.Load(xp + 176);
                a05 = Avx512F.FusedMultiplyAdd(e0, xe5, a05);
                if (TW.N > 1) a15 = Avx512F.FusedMultiplyAdd(e1, xe5, a15);
                a05 = Avx512F.FusedMultiplyAdd(o0, xo5, a05);
                if (TW.N > 1) a15 = Avx512F.FusedMultiplyAdd(o1, xo5, a15);
            }
            if (TR.N > 6)
            {
                var xe6 = Vector512.Load(xp + 192); var xo6 = Vector512.Load(xp + 208);
                a06 = Avx512F.FusedMultiplyAdd(e0, xe6, a06);
                if (TW.N > 1) a16 = Avx512F.FusedMultiplyAdd(e1, xe6, a16);
                a06 = Avx512F.FusedMultiplyAdd(o0, xo6, a06);
                if (TW.N > 1) a16 = Avx512F.FusedMultiplyAdd(o1, xo6, a16);
            }
            if (TR.N > 7)
            {
                var xe7 = Vector512.Load(xp + 224); var xo7 = Vector512.Load(xp + 240);
                a07 = Avx512F.FusedMultiplyAdd(e0, xe7, a07);
                if (TW.N > 1) a17 = Avx512F.FusedMultiplyAdd(e1, xe7, a17);
                a07 = Avx512F.FusedMultiplyAdd(o0, xo7, a07);
                if (TW.N > 1) a17 = Avx512F.FusedMultiplyAdd(o1, xo7, a17);
            }
        }
        Reduce4(a00, a01, a02, a03).Store(sums + 0);
        if (TR.N > 4) Reduce4(a04, a05, a06, a07).Store(sums + 4);
        if (TW.N > 1) Reduce4(a10, a11, a12, a13).Store(sums + 8);
        if (TW.N > 1 && TR.N > 4) Reduce4(a14, a15, a16, a17).Store(sums + 12);
        if (TW.N > 2) Reduce4(a20, a21, a22, a23).Store(sums + 16);
        if (TW.N > 3) Reduce4(a30, a31, a32, a33).Store(sums + 24);
    }

    /// <summary>The horizontal sums of four vectors: (sum a, sum b, sum c, sum d).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        var a8 = a.GetLower() + a.GetUpper();
        var b8 = b.GetLower() + b.GetUpper();
        var c8 = c.GetLower() + c.GetUpper();
        var d8 = d.GetLower() + d.GetUpper();
        var h = Avx.HorizontalAdd(Avx.HorizontalAdd(a8, b8), Avx.HorizontalAdd(c8, d8));
        return h.GetLower() + h.GetUpper();
    }
}
