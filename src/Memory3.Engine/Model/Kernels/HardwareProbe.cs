using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Model.Kernels;

/// <summary>Quick measurements of this machine: memory read bandwidth and libtorch GEMM throughput (medians).</summary>
public static unsafe class HardwareProbe
{
    /// <summary>
    /// Read bandwidth in GB/s (1e9 bytes/s): <paramref name="threads"/> threads each stream their slice of a
    /// <paramref name="bytes"/> buffer with 512-bit loads; median over <paramref name="repeats"/> passes, after one
    /// warm-up pass. Use a buffer well above the last-level cache to measure memory.
    /// </summary>
    public static double MeasureReadBandwidthGBs(long bytes = 1L << 30, int threads = 0, int repeats = 5)
    {
        if (threads <= 0) threads = Environment.ProcessorCount;
        if (repeats <= 0) throw new ArgumentOutOfRangeException(nameof(repeats));
        using var buffer = new ReadBuffer(bytes);
        buffer.MeasureOnce(threads);                    // warm-up pass
        var gbs = new double[repeats];
        for (int rep = 0; rep < repeats; rep++) gbs[rep] = buffer.MeasureOnce(threads);
        return Median(gbs);
    }

    /// <summary>A page-touched, 4 KB aligned buffer for repeated read-bandwidth passes (e.g. between benchmark runs).</summary>
    internal sealed class ReadBuffer : IDisposable
    {
        private byte* _buf;
        private readonly long _bytes;

        public ReadBuffer(long bytes)
        {
            _bytes = Math.Max(1L << 16, bytes) & ~4095L;
            _buf = (byte*)NativeMemory.AlignedAlloc((nuint)_bytes, 4096);
            // Touch every page so first-touch page faults are not measured.
            for (long off = 0; off < _bytes; off += int.MaxValue / 2 + 1)
                new Span<byte>(_buf + off, (int)Math.Min(_bytes - off, int.MaxValue / 2 + 1)).Fill(1);
        }

        /// <summary>One pass over the whole buffer by <paramref name="threads"/> threads on disjoint slices; GB/s.</summary>
        public double MeasureOnce(int threads)
        {
            ObjectDisposedException.ThrowIf(_buf == null, this);
            if (threads <= 0) threads = Environment.ProcessorCount;
            long perThread = (_bytes / threads) & ~511L;
            byte* buf = _buf;
            using var start = new Barrier(threads + 1);
            using var done = new Barrier(threads + 1);
            var sink = new long[threads];
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int ti = t;
                workers[t] = new Thread(() =>
                {
                    start.SignalAndWait();
                    sink[ti] = ReadSum(buf + ti * perThread, perThread);
                    done.SignalAndWait();
                }) { IsBackground = true };
                workers[t].Start();
            }
            start.SignalAndWait();
            long t0 = Stopwatch.GetTimestamp();
            done.SignalAndWait();
            double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            foreach (var w in workers) w.Join();
            GC.KeepAlive(sink);
            return perThread * threads / seconds / 1e9;
        }

        public void Dispose()
        {
            if (_buf != null) NativeMemory.AlignedFree(_buf);
            _buf = null;
        }
    }

    private static long ReadSum(byte* p, long bytes)
    {
        Vector512<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<ulong> a4 = default, a5 = default, a6 = default, a7 = default;
        byte* end = p + (bytes & ~511L);
        for (; p < end; p += 512)
        {
            a0 += Vector512.Load((ulong*)p);
            a1 += Vector512.Load((ulong*)(p + 64));
            a2 += Vector512.Load((ulong*)(p + 128));
            a3 += Vector512.Load((ulong*)(p + 192));
            a4 += Vector512.Load((ulong*)(p + 256));
            a5 += Vector512.Load((ulong*)(p + 320));
            a6 += Vector512.Load((ulong*)(p + 384));
            a7 += Vector512.Load((ulong*)(p + 448));
        }
        return (long)Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
    }

    /// <summary>bf16 [n,n] x [n,n] matmul through TorchSharp (libtorch's threads), GFLOP/s = 2 n³ / median time.</summary>
    public static double MeasureBf16GemmGflops(int n = 1024, int repeats = 5) => MeasureGemm(n, repeats, ScalarType.BFloat16);

    /// <summary>float32 [n,n] x [n,n] matmul through TorchSharp, GFLOP/s = 2 n³ / median time.</summary>
    public static double MeasureFp32GemmGflops(int n = 1024, int repeats = 5) => MeasureGemm(n, repeats, ScalarType.Float32);

    private static double MeasureGemm(int n, int repeats, ScalarType dtype)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        if (repeats <= 0) throw new ArgumentOutOfRangeException(nameof(repeats));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var a = torch.randn(n, n, dtype: dtype);
        var b = torch.randn(n, n, dtype: dtype);
        torch.matmul(a, b).Dispose();              // warm-up (allocations, thread pool)
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            using (torch.matmul(a, b)) { }
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        return 2.0 * n * n * (double)n / Median(times) / 1e9;
    }

    internal static double Median(double[] values)
    {
        var v = (double[])values.Clone();
        Array.Sort(v);
        int m = v.Length / 2;
        return v.Length % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
    }
}
