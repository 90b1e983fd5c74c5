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
        output.WriteLine($"% of bandwidth: of the median of {cores}-thread read passes run between the repeats (shown).");
        output.WriteLine("| rows | implementation | ms per set (median) | GB/s | tok/s | % of bandwidth | best ms | best GB/s | bandwidth GB/s |");
        output.WriteLine("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        using var probe = new HardwareProbe.ReadBuffer(1L << 30);

        foreach (int rows in new[] { 1, 2, 4, 8 })
        {
            var x1536 = torch.randn(rows, Hidden, dtype: ScalarType.BFloat16);
            var x4096 = torch.randn(rows, Ffn, dtype: ScalarType.BFloat16);
            var ys = new Dictionary<int, Tensor>();
            foreach (var s in shapes) if (!ys.ContainsKey(s.Out)) ys[s.Out] = torch.empty(rows, s.Out, dtype: ScalarType.BFloat16);

            var (ours, torchMs, bwRun) = MedianMsInterleaved(
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
                },
                probe, cores);
            WriteRow(output, rows, "Bf16Gemv (bf16 in/out)", ours, weightBytes, bwRun);
            WriteRow(output, rows, "libtorch bf16 linear", torchMs, weightBytes, bwRun);
        }
        output.WriteLine();
        output.WriteLine("Variants at rows = 1 (Bf16Gemv, bf16 in/out; rounds of: read passes, then each variant once):");
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
                var variants = new (string Name, GemvScheduling Sched, bool Prefetch, int Threads)[]
                {
                    ("worker pool, software prefetch (default)", GemvScheduling.WorkerPool, true, 0),
                    ("worker pool, no prefetch", GemvScheduling.WorkerPool, false, 0),
                    ("Parallel.For, software prefetch", GemvScheduling.ParallelFor, true, 0),
                    ("1 thread, software prefetch", GemvScheduling.SingleThread, true, 1),
                };
                const int runs = 7;
                var times = new double[variants.Length, runs];
                var bwAll = new double[runs];
                var bwOne = new double[runs];
                for (int run = -1; run < runs; run++)          // run -1 warms up
                {
                    if (run >= 0)
                    {
                        bwAll[run] = probe.MeasureOnce(cores);
                        bwOne[run] = probe.MeasureOnce(1);
                    }
                    for (int v = 0; v < variants.Length; v++)
                    {
                        Bf16Gemv.Scheduling = variants[v].Sched;
                        Bf16Gemv.SoftwarePrefetch = variants[v].Prefetch;
                        Bf16Gemv.MaxThreads = variants[v].Threads;
                        long t0 = Stopwatch.GetTimestamp();
                        Set();
                        if (run >= 0) times[v, run] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    }
                }
                double bwAllMed = HardwareProbe.Median(bwAll), bwOneMed = HardwareProbe.Median(bwOne);
                output.WriteLine(string.Create(inv, $"(read passes between the rounds: {cores} threads {bwAllMed:F1} GB/s, 1 thread {bwOneMed:F1} GB/s, medians)"));
                output.WriteLine("| variant | ms per set (median) | GB/s | % of bandwidth | best ms |");
                output.WriteLine("|---|---:|---:|---:|---:|");
                for (int v = 0; v < variants.Length; v++)
                {
                    var t = new double[runs];
                    for (int run = 0; run < runs; run++) t[run] = times[v, run];
                    double ms = HardwareProbe.Median(t);
                    double gbs = weightBytes / (ms / 1e3) / 1e9;
                    bool one = variants[v].Threads == 1;
                    output.WriteLine(string.Create(inv,
                        $"| {variants[v].Name} | {ms:F1} | {gbs:F1} | {100 * gbs / (one ? bwOneMed : bwAllMed):F0}%{(one ? " (of 1-thread)" : "")} | {t.Min():F1} |"));
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
            $"| {rows} | {name} | {ms.Median:F1} | {gbs:F1} | {rows * 1000 / ms.Median:F1} | {100 * gbs / bw:F0}% | {ms.Best:F1} | {weightBytes / (ms.Best / 1e3) / 1e9:F1} | {bw:F1} |"));
    }

    /// <summary>
    /// Median and best times of two competitors, run alternately (bandwidth pass, a, b, ...) so that load from other
    /// processes on a shared machine falls on both alike, and the bandwidth they are compared with is measured
    /// under the same conditions.
    /// </summary>
    private static ((double Median, double Best) A, (double Median, double Best) B, double BandwidthGBs) MedianMsInterleaved(
        Action a, Action b, HardwareProbe.ReadBuffer probe, int threads, int runs = 7)
    {
        a(); b(); a(); b();
        var ta = new double[runs];
        var tb = new double[runs];
        var bw = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            bw[i] = probe.MeasureOnce(threads);
            long t0 = Stopwatch.GetTimestamp();
            a();
            ta[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            t0 = Stopwatch.GetTimestamp();
            b();
            tb[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        return ((HardwareProbe.Median(ta), ta.Min()), (HardwareProbe.Median(tb), tb.Min()), HardwareProbe.Median(bw));
    }
}
