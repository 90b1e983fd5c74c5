using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Model.Kernels;

/// <summary>
/// <c>memory3 bench kernels</c>: machine probes, then every linear layer of a 0.6B Llama (hidden 1536, FFN 4096,
/// 20 layers, 12/4 heads of 128, vocab 32000; 1.10 GB of bf16 weights) applied once to 1, 2, 4 and 8 rows, with
/// <see cref="Bf16Gemv"/> and with libtorch's bf16 <c>linear</c>. Times are medians of 7 full sets.
/// Allocates about 1.2 GB and runs for about a minute.
/// </summary>
public static class KernelBench
{
    private const int Hidden = 1536, Ffn = 4096, Layers = 20, KvOut = 512, Vocab = 32000;

    /// <summary>The (out, in) shapes of one decode step's linear layers, in execution order.</summary>
    public static IReadOnlyList<(int Out, int In)> Llama06BShapes()
    {
        var shapes = new List<(int, int)>();
        for (int l = 0; l < Layers; l++)
        {
            shapes.Add((Hidden, Hidden)); // q_proj
            shapes.Add((KvOut, Hidden));  // k_proj
            shapes.Add((KvOut, Hidden));  // v_proj
            shapes.Add((Hidden, Hidden)); // o_proj
            shapes.Add((Ffn, Hidden));    // gate_proj
            shapes.Add((Ffn, Hidden));    // up_proj
            shapes.Add((Hidden, Ffn));    // down_proj
        }
        shapes.Add((Vocab, Hidden));      // lm_head
        return shapes;
    }

    public static void Run(TextWriter output)
    {
        var inv = CultureInfo.InvariantCulture;
        int cores = Environment.ProcessorCount;
        output.WriteLine(string.Create(inv, $"cores: {cores}, AVX-512F: {Bf16Gemv.IsSupported}, libtorch threads: {torch.get_num_threads()}"));
        double bw1 = HardwareProbe.MeasureReadBandwidthGBs(1L << 30, 1, 5);
        double bwN = HardwareProbe.MeasureReadBandwidthGBs(1L << 30, cores, 5);
        output.WriteLine(string.Create(inv, $"read bandwidth (1 GiB, median of 5): 1 thread {bw1:F1} GB/s, {cores} threads {bwN:F1} GB/s"));
        output.WriteLine(string.Create(inv, $"bf16 GEMM 1024^3: {HardwareProbe.MeasureBf16GemmGflops(1024, 5):F0} GFLOP/s; fp32 GEMM 1024^3: {HardwareProbe.MeasureFp32GemmGflops(1024, 5):F0} GFLOP/s"));
        if (!Bf16Gemv.IsSupported)
        {
            output.WriteLine("no AVX-512F: kernel benchmark skipped");
            return;
        }

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var shapes = Llama06BShapes();
        var weights = new Tensor[shapes.Count];
        long weightBytes = 0;
        for (int i = 0; i < shapes.Count; i++)
        {
            weights[i] = (torch.rand(shapes[i].Out, shapes[i].In, dtype: ScalarType.BFloat16) - 0.5) * 0.05;
            weightBytes += 2L * shapes[i].Out * shapes[i].In;
        }
        output.WriteLine(string.Create(inv, $"0.6B Llama linear layers: {shapes.Count} weights, {weightBytes / 1e9:F3} GB bf16"));
        output.WriteLine();
        output.WriteLine("| rows | implementation | ms per set (median) | GB/s | tok/s | % of bandwidth | best ms | best GB/s |");
        output.WriteLine("|---:|---|---:|---:|---:|---:|---:|---:|");

        foreach (int rows in new[] { 1, 2, 4, 8 })
        {
            var x1536 = torch.randn(rows, Hidden, dtype: ScalarType.BFloat16);
            var x4096 = torch.randn(rows, Ffn, dtype: ScalarType.BFloat16);
            var ys = new Dictionary<int, Tensor>();
            foreach (var s in shapes) if (!ys.ContainsKey(s.Out)) ys[s.Out] = torch.empty(rows, s.Out, dtype: ScalarType.BFloat16);

            var (ours, torchMs) = MedianMsInterleaved(
                () =>
                {
                    for (int i = 0; i < shapes.Count; i++)
                        Bf16Gemv.Linear(shapes[i].In == Hidden ? x1536 : x4096, weights[i], null, ys[shapes[i].Out]);
                },
                () =>
                {
                    using var inner = torch.NewDisposeScope();
                    for (int i = 0; i < shapes.Count; i++)
                        torch.nn.functional.linear(shapes[i].In == Hidden ? x1536 : x4096, weights[i]).Dispose();
                });
            WriteRow(output, rows, "Bf16Gemv (bf16 in/out)", ours, weightBytes, bwN);
            WriteRow(output, rows, "libtorch bf16 linear", torchMs, weightBytes, bwN);
        }

        output.WriteLine();
        output.WriteLine("Variants at rows = 1 (Bf16Gemv, bf16 in/out, each measured after the other):");
        output.WriteLine("| variant | ms per set (median) | GB/s | % of bandwidth | best ms |");
        output.WriteLine("|---|---:|---:|---:|---:|");
        {
            var x1536 = torch.randn(1, Hidden, dtype: ScalarType.BFloat16);
            var x4096 = torch.randn(1, Ffn, dtype: ScalarType.BFloat16);
            var ys = new Dictionary<int, Tensor>();
            foreach (var s in shapes) if (!ys.ContainsKey(s.Out)) ys[s.Out] = torch.empty(1, s.Out, dtype: ScalarType.BFloat16);
            void Set()
            {
                for (int i = 0; i < shapes.Count; i++)
                    Bf16Gemv.Linear(shapes[i].In == Hidden ? x1536 : x4096, weights[i], null, ys[shapes[i].Out]);
            }
            var saved = (Bf16Gemv.Scheduling, Bf16Gemv.SoftwarePrefetch, Bf16Gemv.MaxThreads);
            try
            {
                foreach (var (name, sched, pf, threads) in new (string, GemvScheduling, bool, int)[]
                {
                    ("worker pool, software prefetch (default)", GemvScheduling.WorkerPool, true, 0),
                    ("worker pool, no prefetch", GemvScheduling.WorkerPool, false, 0),
                    ("Parallel.For, software prefetch", GemvScheduling.ParallelFor, true, 0),
                    ("1 thread, software prefetch", GemvScheduling.SingleThread, true, 1),
                })
                {
                    Bf16Gemv.Scheduling = sched;
                    Bf16Gemv.SoftwarePrefetch = pf;
                    Bf16Gemv.MaxThreads = threads;
                    var (ms, best) = MedianMs(Set);
                    double gbs = weightBytes / (ms / 1e3) / 1e9;
                    output.WriteLine(string.Create(inv, $"| {name} | {ms:F1} | {gbs:F1} | {100 * gbs / (threads == 1 ? bw1 : bwN):F0}%{(threads == 1 ? " (of 1-thread)" : "")} | {best:F1} |"));
                }
            }
            finally
            {
                (Bf16Gemv.Scheduling, Bf16Gemv.SoftwarePrefetch, Bf16Gemv.MaxThreads) = saved;
            }
        }
    }

    private static void WriteRow(TextWriter output, int rows, string name, (double Median, double Best) ms, long weightBytes, double bw)
    {
        double gbs = weightBytes / (ms.Median / 1e3) / 1e9;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {rows} | {name} | {ms.Median:F1} | {gbs:F1} | {rows * 1000 / ms.Median:F1} | {100 * gbs / bw:F0}% | {ms.Best:F1} | {weightBytes / (ms.Best / 1e3) / 1e9:F1} |"));
    }

    /// <summary>
    /// Median and best times of two competitors, run alternately (a, b, a, b, ...) so that load from other processes
    /// on a shared machine falls on both alike.
    /// </summary>
    private static ((double Median, double Best) A, (double Median, double Best) B) MedianMsInterleaved(Action a, Action b, int runs = 7)
    {
        a(); b(); a(); b();
        var ta = new double[runs];
        var tb = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            a();
            ta[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            t0 = Stopwatch.GetTimestamp();
            b();
            tb[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        return ((HardwareProbe.Median(ta), ta.Min()), (HardwareProbe.Median(tb), tb.Min()));
    }

    /// <summary>Median and best time of <paramref name="runs"/> runs after two warm-up runs, in ms.</summary>
    private static (double Median, double Best) MedianMs(Action set, int runs = 7)
    {
        set();
        set();
        var t = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            set();
            t[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        return (HardwareProbe.Median(t), t.Min());
    }
}
