using System.Diagnostics;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Kernels;

namespace Memory3.Engine.Inference;

public sealed record DecodeBenchResult(
    int Batch, int PromptTokens, int Steps, double MsPerStepMedian, double TokensPerSecond,
    long WeightBytes, double BandwidthGBs, double FloorTokensPerSecond, double PercentOfFloor, string LinearPath);

public sealed record PrefillBenchResult(
    int PromptTokens, int ChunkTokens, double SecondsMedian, double TokensPerSecond,
    long ParameterCount, long MatmulParameters, double GflopsByParameters, double GflopsByMatmuls, double Bf16GemmPeakGflops,
    double PercentOfPeakByParameters, double PercentOfPeakByMatmuls);

public sealed record LoadBenchResult(long WeightBytes, long BaselineRssBytes, long PeakRssBytes, double Seconds)
{
    /// <summary>(peak RSS − libtorch's baseline) ÷ weight bytes; the target is ≤ 1.3.</summary>
    public double PeakOverWeights => (double)(PeakRssBytes - BaselineRssBytes) / WeightBytes;
}

/// <summary>
/// The measurements behind <c>memory3 bench</c>. Each figure comes with the reference it is judged against,
/// measured in the same run: memory-read bandwidth for decode, bf16 GEMM peak for prefill.
/// </summary>
public static class ModelBench
{
    /// <summary>
    /// Decode throughput: <paramref name="batch"/> sequences, each prefilled with <paramref name="promptTokens"/> random
    /// tokens (not timed), then <paramref name="steps"/> decode steps of one token per sequence, timed one by one.
    /// </summary>
    public static DecodeBenchResult Decode(CausalLM model, int batch, int promptTokens = 128, int steps = 32, double? bandwidthGBs = null)
    {
        bandwidthGBs ??= HardwareProbe.MeasureReadBandwidthGBs();
        var rng = new Random(1234);
        using var pool = model.CreatePool(batch, promptTokens + steps + 2);
        var slots = Enumerable.Range(0, batch).Select(_ => pool.Allocate()).ToArray();
        foreach (var s in slots)
        {
            var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
            model.Forward(StepBatch.Contiguous([(s, 0, prompt)]), pool);
        }
        var next = slots.Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        // Warm-up steps are part of the cache fill, not of the timing.
        var times = new List<double>();
        for (int step = 0; step < steps + 2; step++)
        {
            var batchSeqs = slots.Select((s, i) => (s, promptTokens + step, new[] { next[i] })).ToList();
            var sw = Stopwatch.StartNew();
            var logits = model.Forward(StepBatch.Contiguous(batchSeqs), pool);
            sw.Stop();
            if (step >= 2) times.Add(sw.Elapsed.TotalMilliseconds);
            for (int i = 0; i < batch; i++) next[i] = ArgMax(logits[i]);
        }
        double median = Median(times);
        double tps = batch * 1000.0 / median;
        double floor = bandwidthGBs.Value * 1e9 / model.WeightBytes;   // steps/s if a step only read the weights once
        return new DecodeBenchResult(batch, promptTokens, steps, median, tps, model.WeightBytes, bandwidthGBs.Value,
            floor * batch, 100.0 * tps / (floor * batch), LinearDispatch.Describe(batch));
    }

    /// <summary>Prefill throughput on one prompt, in chunks of <paramref name="chunkTokens"/>, median of <paramref name="repeats"/>.</summary>
    public static PrefillBenchResult Prefill(CausalLM model, int promptTokens = 512, int chunkTokens = 512, int repeats = 3, double? gemmPeakGflops = null)
    {
        gemmPeakGflops ??= HardwareProbe.MeasureBf16GemmGflops();
        var rng = new Random(99);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        using var pool = model.CreatePool(1, promptTokens);
        var times = new List<double>();
        for (int r = 0; r < repeats + 1; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int done = 0; done < promptTokens; done += chunkTokens)
            {
                int n = Math.Min(chunkTokens, promptTokens - done);
                model.Forward(StepBatch.Contiguous([(0, done, prompt[done..(done + n)])]), pool);
            }
            sw.Stop();
            if (r > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        double sec = Median(times);
        var c = model.Config;
        long embed = (long)c.VocabSize * c.HiddenSize;
        long matmulParamsPerToken = model.ParameterCount - embed - (c.TieWordEmbeddings ? 0 : embed); // the layers' linears, run on every token
        long chunks = (promptTokens + chunkTokens - 1) / chunkTokens;
        double flopsByParams = 2.0 * model.ParameterCount * promptTokens;
        double flopsByMatmuls = 2.0 * matmulParamsPerToken * promptTokens + 2.0 * embed * chunks; // lm_head runs on one row per chunk
        return new PrefillBenchResult(promptTokens, chunkTokens, sec, promptTokens / sec, model.ParameterCount, matmulParamsPerToken,
            flopsByParams / sec / 1e9, flopsByMatmuls / sec / 1e9, gemmPeakGflops.Value,
            100 * flopsByParams / sec / 1e9 / gemmPeakGflops.Value, 100 * flopsByMatmuls / sec / 1e9 / gemmPeakGflops.Value);
    }

    /// <summary>
    /// Peak resident memory while loading: the baseline is taken after libtorch is initialised, then the kernel's
    /// high-water mark is reset (/proc/self/clear_refs) and the model loaded.
    /// </summary>
    public static LoadBenchResult Load(string modelDir, ModelOptions options)
    {
        using (var warm = TorchSharp.torch.ones(16, 16)) { using var _ = TorchSharp.torch.matmul(warm, warm); }
        GC.Collect();
        long baseline = ProcStatus("VmRSS");
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        var sw = Stopwatch.StartNew();
        using var model = CausalLM.Load(modelDir, options);
        sw.Stop();
        long peak = ProcStatus("VmHWM");
        return new LoadBenchResult(model.WeightBytes, baseline, peak, sw.Elapsed.TotalSeconds);
    }

    private static long ProcStatus(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0]) * 1024;
        return 0;
    }

    private static int ArgMax(float[] v)
    {
        Memory3.Engine.Model.Sampling.SamplingMath.MaxArg(v, out int a);
        return a;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
