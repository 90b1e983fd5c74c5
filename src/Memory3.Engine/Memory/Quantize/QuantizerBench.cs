using System.Diagnostics;
using System.Globalization;

namespace Memory3.Engine.Memory.Quantize;

public sealed record QuantizerBenchOptions
{
    /// <summary>Training vectors per quantizer in the configuration comparison.</summary>
    public int CompareTrainVectors { get; init; } = 32_768;
    public int CompareTestVectors { get; init; } = 8_192;
    /// <summary>Memories of the paper's shape the full set is trained on (× 64 vectors per quantizer).</summary>
    public int TrainMemories { get; init; } = 256;
    public int TestMemories { get; init; } = 32;
    public int Iterations { get; init; } = 16;
    public bool Compare { get; init; } = true;
    public int Seed { get; init; } = 1;
}

/// <summary>
/// Benchmark on synthetic attention-like vectors (<see cref="SyntheticKv"/>) at the paper's shape: compares quantizer
/// layouts within 16 bytes on one layer, then trains the default set for all layers and times encode and decode of
/// one memory. Synthetic figures only; real ones come from training on a bank.
/// </summary>
public static class QuantizerBench
{
    public static void Run(TextWriter w, QuantizerBenchOptions? options = null)
    {
        var o = options ?? new QuantizerBenchOptions();
        var c = CultureInfo.InvariantCulture;
        var shape = MemoryShape.Paper;
        var gen = new SyntheticKv(shape, o.Seed);
        w.WriteLine($"synthetic K/V: x = mu + A z + 0.05 eps, rank {SyntheticKv.Rank}, 2 outlier dims; shape {shape}; {Environment.ProcessorCount} cores");

        if (o.Compare)
        {
            w.WriteLine();
            w.WriteLine(string.Format(c, "layout comparison, layer 0, {0} training / {1} test vectors, {2} iterations", o.CompareTrainVectors, o.CompareTestVectors, o.Iterations));
            w.WriteLine("layout                 bytes  train s   K rel.err  K e2/x2    V rel.err  V e2/x2");
            var data = new[] { KvKind.Key, KvKind.Value }.Select(k => (Train: gen.Vectors(0, k, o.CompareTrainVectors, 1_000_000), Test: gen.Vectors(0, k, o.CompareTestVectors, 2_000_000))).ToArray();
            var layouts = new (string Name, QuantizerOptions? Q)[]
            {
                ("mean only (trivial)", null),
                ("PQ16x8", new() { SubQuantizers = 16, Rotation = QuantizerRotation.None }),
                ("ROT-PQ16x8", new() { SubQuantizers = 16, Rotation = QuantizerRotation.Random }),
                ("PCA-PQ16x8", new() { SubQuantizers = 16, Rotation = QuantizerRotation.Pca }),
                ("RQ2x8-PQ14x8", new() { ResidualStages = 2, SubQuantizers = 14, Rotation = QuantizerRotation.None }),
                ("RQ2x8-PCA-PQ14x8", new() { ResidualStages = 2, SubQuantizers = 14, Rotation = QuantizerRotation.Pca }),
                ("RQ1x8-PCA-PQ15x8", new() { ResidualStages = 1, SubQuantizers = 15, Rotation = QuantizerRotation.Pca }),
                ("PCA-PQ10x8 (10 B)", new() { SubQuantizers = 10, Rotation = QuantizerRotation.Pca }),
                ("PCA-PQ20x8 (20 B)", new() { SubQuantizers = 20, Rotation = QuantizerRotation.Pca }),
            };
            foreach (var (name, q) in layouts)
            {
                var sw = Stopwatch.StartNew();
                var errs = new (double Rel, double Sq)[2];
                for (int k = 0; k < 2; k++)
                {
                    var vq = q is null ? null : VectorQuantizer.Train(data[k].Train, shape.HeadDim, q with { Iterations = o.Iterations }, o.Seed + k);
                    errs[k] = Error(vq, data[k].Train, data[k].Test, shape.HeadDim);
                }
                w.WriteLine(string.Format(c, "{0,-22} {1,5} {2,8:F2} {3,11:F4} {4,9:F5} {5,11:F4} {6,9:F5}",
                    name, q?.BytesPerVector ?? 0, sw.Elapsed.TotalSeconds / 2, errs[0].Rel, errs[0].Sq, errs[1].Rel, errs[1].Sq));
            }
        }

        w.WriteLine();
        var opts = new QuantizerOptions { Iterations = o.Iterations };
        w.WriteLine(string.Format(c, "full set {0}: {1} layers x K/V, {2} training memories ({3} vectors per quantizer)", opts.Describe(), shape.Layers, o.TrainMemories, o.TrainMemories * shape.VectorsPerLayer));
        var swTrain = Stopwatch.StartNew();
        var set = QuantizerSet.Train(shape, gen.Memories(0, o.TrainMemories), opts, o.Seed);
        swTrain.Stop();
        w.WriteLine(string.Format(c, "training: {0:F1} s total, {1:F2} s per quantizer", swTrain.Elapsed.TotalSeconds, swTrain.Elapsed.TotalSeconds / (2 * shape.Layers)));

        var codec = new QuantizedCodec(set, shape);
        var test = gen.Memories(1_000_000, o.TestMemories).ToList();
        var records = test.Select(codec.Encode).ToList(); // warm-up
        foreach (var r in records) codec.Decode(r);
        var sw2 = Stopwatch.StartNew();
        foreach (var m in test) codec.Encode(m);
        double encUs = sw2.Elapsed.TotalMicroseconds / test.Count;
        int reps = Math.Max(1, 2000 / test.Count);
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        sw2.Restart();
        for (int rep = 0; rep < reps; rep++) foreach (var r in records) codec.Decode(r);
        double decUs = sw2.Elapsed.TotalMicroseconds / (reps * test.Count);
        double decCpuUs = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMicroseconds / (reps * test.Count);
        w.WriteLine(string.Format(c, "per memory ({0} vectors): encode {1:F0} us (parallel over layers); decode {2:F0} us wall, {3:F0} us process CPU (one thread); payload {4} B vs bf16 {5} B",
            2 * shape.VectorsPerKind, encUs, decUs, decCpuUs, codec.PayloadBytes, 4L * shape.ElementsPerKind));
        QuantizationReport.Evaluate(set, test).WriteTo(w);
        w.WriteLine($"fingerprint {set.Fingerprint}");
    }

    /// <summary>(mean ‖x − x̂‖/‖x‖, Σe²/Σx²) on test; a null quantizer reconstructs every vector as the training mean.</summary>
    internal static (double Rel, double Sq) Error(VectorQuantizer? q, float[] train, float[] test, int dim)
    {
        int n = test.Length / dim;
        var mean = new float[dim];
        for (int i = 0; i < train.Length; i++) mean[i % dim] += train[i];
        for (int d = 0; d < dim; d++) mean[d] /= train.Length / dim;
        var codes = new byte[Math.Max(1, q?.BytesPerVector ?? 1)];
        var back = new float[dim];
        double rel = 0, e2 = 0, x2 = 0;
        for (int i = 0; i < n; i++)
        {
            var x = test.AsSpan(i * dim, dim);
            if (q is null) mean.CopyTo(back);
            else { q.Encode(x, codes); q.Decode(codes, 1, back); }
            double a = 0, b = 0;
            for (int d = 0; d < dim; d++) { double t = x[d] - back[d]; a += t * t; b += (double)x[d] * x[d]; }
            rel += Math.Sqrt(a / b); e2 += a; x2 += b;
        }
        return (rel / n, e2 / x2);
    }
}
