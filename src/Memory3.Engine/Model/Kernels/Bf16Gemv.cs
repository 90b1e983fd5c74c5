using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Memory3.Engine.Model.Kernels;

/// <summary>How <see cref="Bf16Gemv"/> spreads a call over threads.</summary>
public enum GemvScheduling
{
    /// <summary>The persistent <see cref="KernelWorkerPool"/> (spin, then sleep). Default: lowest per-call overhead.</summary>
    WorkerPool,
    /// <summary><c>Parallel.For</c> over the participating threads (for comparison).</summary>
    ParallelFor,
    /// <summary>Only the calling thread.</summary>
    SingleThread,
}

/// <summary>
/// Bandwidth-bound linear layer for few rows (decode): <c>y[r, n] = sum_k x[r, k] * W[n, k] (+ bias[n])</c>, with W in
/// the nn.Linear layout <c>[outFeatures, inFeatures]</c>, row-major bf16. Accumulates in float32.
/// Each call reads W from memory once whatever the number of rows: a block of weight rows is combined with every
/// row of x (up to 8 at once in registers; more rows re-read the block from L2, not from memory).
/// Parallel over blocks of output features, handed out dynamically, on <see cref="KernelWorkerPool.Shared"/>.
/// Needs AVX-512F (<see cref="IsSupported"/>). Not reentrant across threads in parallel: a second concurrent caller
/// runs on its own thread only.
/// </summary>
public static unsafe partial class Bf16Gemv
{
    /// <summary>True when this CPU runs the kernel (AVX-512F).</summary>
    public static bool IsSupported => Avx512F.IsSupported;

    /// <summary>Threads per call (caller included); 0 = all of <see cref="Environment.ProcessorCount"/>.</summary>
    public static int MaxThreads { get; set; }

    /// <summary>How calls are spread over threads (benchmarking knob).</summary>
    public static GemvScheduling Scheduling { get; set; } = GemvScheduling.WorkerPool;

    /// <summary>
    /// Software prefetch (prefetcht0, <see cref="Bf16GemvMicroKernel.PrefetchDistance"/> elements ahead) of the weight
    /// rows in the inner loop. Default on: with weights streamed from memory it measured 8-30% faster at 1 to 8 rows.
    /// It costs time when the weights are already in cache (a 1.5 MB matrix called in a loop: about 45 → 67 µs).
    /// </summary>
    public static bool SoftwarePrefetch { get; set; } = true;

    /// <summary>Blocks of output features handed out per participating thread (load balance vs hand-out cost).</summary>
    internal static int BlocksPerThread { get; set; } = 8;

    /// <summary>Software prefetch is used up to this many rows of x (benchmarking knob).</summary>
    internal static int PrefetchMaxRows { get; set; } = int.MaxValue;

    /// <summary>Weight rows per inner loop for a single row of x: 1, 2 or 4 (benchmarking knob).</summary>
    internal static int Rows1WeightRows { get; set; } = 4;

    /// <summary>With <see cref="SoftwarePrefetch"/>: prefetch to L2 (prefetcht1) instead of L1 (prefetcht0).</summary>
    internal static bool PrefetchToL2 { get; set; }

    /// <summary>Below this many weight bytes a call runs on the calling thread only.</summary>
    public static long SingleThreadBelowBytes { get; set; } = 256 * 1024;

    /// <summary>float32 x [rows, inFeatures] → float32 y [rows, outFeatures]; optional float32 bias [outFeatures].</summary>
    public static void Linear(ushort* W, int outFeatures, int inFeatures, float* x, int rows, float* y, float* bias = null)
        => LinearCore(W, outFeatures, inFeatures, x, xBf16: false, rows, y, yBf16: false, bias, biasBf16: false);

    /// <summary>
    /// bf16 x [rows, inFeatures] → bf16 y [rows, outFeatures]; optional bf16 bias. float32 accumulation, bias added in
    /// float32, one round to nearest even on store.
    /// </summary>
    public static void Linear(ushort* W, int outFeatures, int inFeatures, ushort* xBf16, int rows, ushort* yBf16, ushort* biasBf16 = null)
        => LinearCore(W, outFeatures, inFeatures, xBf16, xBf16: true, rows, yBf16, yBf16: true, biasBf16, biasBf16: true);

    /// <summary>float32 x → bf16 y (rounded to nearest even); optional bf16 bias.</summary>
    public static void Linear(ushort* W, int outFeatures, int inFeatures, float* x, int rows, ushort* yBf16, ushort* biasBf16 = null)
        => LinearCore(W, outFeatures, inFeatures, x, xBf16: false, rows, yBf16, yBf16: true, biasBf16, biasBf16: true);

    /// <summary>The general form: x, y and bias each float32 or bf16 (flags); bias may be null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LinearCore(ushort* W, int outFeatures, int inFeatures, void* x, bool xBf16, int rows,
        void* y, bool yBf16, void* bias, bool biasBf16)
    {
        if (W == null || x == null || y == null) ThrowNull();
        if (outFeatures <= 0 || inFeatures <= 0 || rows <= 0) ThrowShape(outFeatures, inFeatures, rows);
        if (!Avx512F.IsSupported) ThrowNotSupported();

        int nChunks = inFeatures / 32;
        int tailStart = nChunks * 32, tailLen = inFeatures - tailStart;
        int xStride = rows * 32;
        float* xp = Scratch.Get((long)nChunks * xStride + (long)rows * tailLen);
        float* xTail = xp + (long)nChunks * xStride;
        PrepareX(x, xBf16, rows, inFeatures, nChunks, xp, xTail);

        var job = new GemvJob
        {
            W = W, Out = outFeatures, In = inFeatures, Rows = rows,
            X = xp, XStride = xStride, NChunks = nChunks, XTail = xTail, TailStart = tailStart, TailLen = tailLen,
            Y = y, YBf16 = yBf16, Bias = bias, BiasBf16 = biasBf16, Prefetch = SoftwarePrefetch && rows <= PrefetchMaxRows,
        };

        int threads = MaxThreads > 0 ? MaxThreads : Environment.ProcessorCount;
        long weightBytes = (long)outFeatures * inFeatures * 2;
        if (Scheduling == GemvScheduling.SingleThread || weightBytes < SingleThreadBelowBytes || outFeatures < 16) threads = 1;
        // Dynamic hand-out: about BlocksPerThread blocks per thread, whole multiples of 4 weight rows.
        int target = threads * BlocksPerThread;
        int block = (outFeatures + target - 1) / target;
        block = Math.Clamp((block + 3) & ~3, 8, 512);
        // More than 8 rows go over a block once per 8-row group: keep the block small enough to stay in L2.
        if (rows > 8) block = Math.Min(block, Math.Max(4, (int)(256 * 1024 / (2L * inFeatures)) & ~3));
        job.BlockRows = block;

        if (threads == 1)
        {
            RunJob(&job, 0);
        }
        else if (Scheduling == GemvScheduling.ParallelFor)
        {
            nint ctx = (nint)(&job);
            Parallel.For(0, threads, i => RunJob((void*)ctx, i));
        }
        else
        {
            KernelWorkerPool.Shared.Run(&RunJob, &job, threads);
        }
    }

    private struct GemvJob
    {
        public ushort* W;
        public int Out, In, Rows;
        public float* X;          // [nChunks][rows][32] de-interleaved
        public int XStride, NChunks;
        public float* XTail;      // [rows][tailLen] plain float32
        public int TailStart, TailLen;
        public void* Y;
        public bool YBf16;
        public void* Bias;
        public bool BiasBf16;
        public bool Prefetch;
        public int BlockRows;
        public int Next;          // next output feature to hand out (Interlocked)
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunJob(void* ctx, int worker)
    {
        var job = (GemvJob*)ctx;
        float* sums = stackalloc float[32];
        while (true)
        {
            int start = Interlocked.Add(ref job->Next, job->BlockRows) - job->BlockRows;
            if (start >= job->Out) return;
            int end = Math.Min(start + job->BlockRows, job->Out);
            if (!job->Prefetch) ProcessRange<C0>(job, start, end, sums);
            else if (PrefetchToL2) ProcessRange<C2>(job, start, end, sums);
            else ProcessRange<C1>(job, start, end, sums);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ProcessRange<TP>(GemvJob* job, int n0, int n1, float* sums) where TP : struct, IConst
    {
        int rows = job->Rows, inF = job->In, nChunks = job->NChunks, xStride = job->XStride;
        for (int r0 = 0; r0 < rows; r0 += 8)
        {
            int g = Math.Min(8, rows - r0);
            int tw = g == 1 ? Rows1WeightRows : g <= 4 ? 4 : 2;
            float* xp = job->X + r0 * 32;
            int n = n0;
            for (; n + tw <= n1; n += tw)
            {
                ushort* w = job->W + (nint)n * inF;
                Dispatch<TP>(g, tw, w, inF, nChunks, xp, xStride, sums);
                Finish(job, n, tw, r0, g, sums);
            }
            for (; n < n1; n++)
            {
                ushort* w = job->W + (nint)n * inF;
                Dispatch<TP>(g, 1, w, inF, nChunks, xp, xStride, sums);
                Finish(job, n, 1, r0, g, sums);
            }
        }
    }

    private static void Dispatch<TP>(int g, int tw, ushort* w, int inF, int nChunks, float* xp, int xStride, float* sums)
        where TP : struct, IConst
    {
        if (tw == 4)
        {
            switch (g)
            {
                case 1: Bf16GemvMicroKernel.Dot<C1, C4, TP>(w, inF, nChunks, xp, xStride, sums); return;
                case 2: Bf16GemvMicroKernel.Dot<C2, C4, TP>(w, inF, nChunks, xp, xStride, sums); return;
                case 3: Bf16GemvMicroKernel.Dot<C3, C4, TP>(w, inF, nChunks, xp, xStride, sums); return;
                default: Bf16GemvMicroKernel.Dot<C4, C4, TP>(w, inF, nChunks, xp, xStride, sums); return;
            }
        }
        if (tw == 2)
        {
            switch (g)
            {
                case 1: Bf16GemvMicroKernel.Dot<C1, C2, TP>(w, inF, nChunks, xp, xStride, sums); return;
                case 5: Bf16GemvMicroKernel.Dot<C5, C2, TP>(w, inF, nChunks, xp, xStride, sums); return;
                case 6: Bf16GemvMicroKernel.Dot<C6, C2, TP>(w, inF, nChunks, xp, xStride, sums); return;
                case 7: Bf16GemvMicroKernel.Dot<C7, C2, TP>(w, inF, nChunks, xp, xStride, sums); return;
                default: Bf16GemvMicroKernel.Dot<C8, C2, TP>(w, inF, nChunks, xp, xStride, sums); return;
            }
        }
        switch (g)
        {
            case 1: Bf16GemvMicroKernel.Dot<C1, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            case 2: Bf16GemvMicroKernel.Dot<C2, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            case 3: Bf16GemvMicroKernel.Dot<C3, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            case 4: Bf16GemvMicroKernel.Dot<C4, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            case 5: Bf16GemvMicroKernel.Dot<C5, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            case 6: Bf16GemvMicroKernel.Dot<C6, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            case 7: Bf16GemvMicroKernel.Dot<C7, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
            default: Bf16GemvMicroKernel.Dot<C8, C1, TP>(w, inF, nChunks, xp, xStride, sums); return;
        }
    }

    /// <summary>Adds the scalar tail (inFeatures % 32) and the bias, and stores tw x g outputs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(GemvJob* job, int n, int tw, int r0, int g, float* sums)
    {
        int outF = job->Out, tailLen = job->TailLen;
        for (int w = 0; w < tw; w++)
        {
            int nn = n + w;
            float b = 0f;
            if (job->Bias != null) b = job->BiasBf16 ? BFloat16.ToFloat(((ushort*)job->Bias)[nn]) : ((float*)job->Bias)[nn];
            ushort* wt = job->W + (nint)nn * job->In + job->TailStart;
            for (int r = 0; r < g; r++)
            {
                float s = sums[w * 8 + r];
                if (tailLen != 0)
                {
                    float* xt = job->XTail + (nint)(r0 + r) * tailLen;
                    for (int k = 0; k < tailLen; k++) s = MathF.FusedMultiplyAdd(BFloat16.ToFloat(wt[k]), xt[k], s);
                }
                s += b;
                nint at = (nint)(r0 + r) * outF + nn;
                if (job->YBf16) ((ushort*)job->Y)[at] = BFloat16.FromFloat(s);
                else ((float*)job->Y)[at] = s;
            }
        }
    }

    /// <summary>Copies x into the kernel's layout: per 32-feature chunk and row, 16 even then 16 odd features; the tail plain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PrepareX(void* x, bool xBf16, int rows, int inF, int nChunks, float* xp, float* xTail)
    {
        int tailStart = nChunks * 32, tailLen = inF - tailStart, xStride = rows * 32;
        if (xBf16)
        {
            var hiMask = Vector512.Create(0xFFFF_0000u);
            for (int r = 0; r < rows; r++)
            {
                ushort* src = (ushort*)x + (nint)r * inF;
                for (int c = 0; c < nChunks; c++)
                {
                    var v = Vector512.Load((uint*)(src + c * 32));
                    float* dst = xp + (nint)c * xStride + r * 32;
                    (v << 16).AsSingle().Store(dst);
                    (v & hiMask).AsSingle().Store(dst + 16);
                }
                for (int k = 0; k < tailLen; k++) xTail[(nint)r * tailLen + k] = BFloat16.ToFloat(src[tailStart + k]);
            }
        }
        else
        {
            var evenIdx = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            var oddIdx = evenIdx + Vector512<int>.One;
            for (int r = 0; r < rows; r++)
            {
                float* src = (float*)x + (nint)r * inF;
                for (int c = 0; c < nChunks; c++)
                {
                    var lo = Vector512.Load(src + c * 32);
                    var hi = Vector512.Load(src + c * 32 + 16);
                    float* dst = xp + (nint)c * xStride + r * 32;
                    Avx512F.PermuteVar16x32x2(lo, evenIdx, hi).Store(dst);
                    Avx512F.PermuteVar16x32x2(lo, oddIdx, hi).Store(dst + 16);
                }
                for (int k = 0; k < tailLen; k++) xTail[(nint)r * tailLen + k] = src[tailStart + k];
            }
        }
    }

    /// <summary>A per-thread, 64-byte aligned, grow-only float buffer for the prepared x.</summary>
    private static class Scratch
    {
        [ThreadStatic] private static Holder? t_holder;

        public static float* Get(long floats)
        {
            var h = t_holder ??= new Holder();
            if (h.Capacity < floats)
            {
                h.Free();
                long cap = Math.Max(floats, 16 * 1024);
                h.Ptr = (float*)NativeMemory.AlignedAlloc((nuint)(cap * sizeof(float)), 64);
                h.Capacity = cap;
            }
            return h.Ptr;
        }

        private sealed class Holder
        {
            public float* Ptr;
            public long Capacity;
            public void Free()
            {
                if (Ptr != null) NativeMemory.AlignedFree(Ptr);
                Ptr = null;
                Capacity = 0;
            }
            ~Holder() => Free();
        }
    }

    [DoesNotReturn]
    private static void ThrowNull() => throw new ArgumentNullException("W, x and y must not be null.");

    [DoesNotReturn]
    private static void ThrowShape(int outFeatures, int inFeatures, int rows) =>
        throw new ArgumentOutOfRangeException(nameof(rows),
            $"outFeatures ({outFeatures}), inFeatures ({inFeatures}) and rows ({rows}) must be positive.");

    [DoesNotReturn]
    private static void ThrowNotSupported() => throw new PlatformNotSupportedException("Bf16Gemv needs AVX-512F.");
}
