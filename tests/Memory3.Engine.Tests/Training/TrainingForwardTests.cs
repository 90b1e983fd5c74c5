using Memory3.Engine.Memory.Encode;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Memory3.Engine.Tests.Memory;
using Memory3.Engine.Training;
using static TorchSharp.torch;

namespace Memory3.Engine.Tests.Training;

/// <summary>
/// The training forward must be the serving forward: memories written by <see cref="TrainingModel.EncodeMemories"/>
/// equal the encoder's, and logits over <c>[prefix | memories | context]</c> equal the engine's. Otherwise a model
/// trained here would read memory one way in training and another when served.
/// </summary>
public class TrainingForwardTests
{
    private static ModelConfig Cfg() =>
        RandomModel.Make("Memory3ForCausalLM", vocab: 64, hidden: 32, ffn: 48, layers: 4, heads: 4, kvHeads: 2, tie: true) with
        {
            Memory = new MemoryConfig(2, 2, 3, 16, 2, 64, "<s>Reference:"),
        };

    /// <summary>One random float32 model written to disk, loaded by the engine and for training.</summary>
    private sealed class Models : IDisposable
    {
        private readonly TempDir _dir = new();
        public ModelConfig Config { get; } = Cfg();
        public CausalLM Engine { get; }
        public TrainingModel Training { get; }

        public Models(int seed)
        {
            RandomModel.Write(_dir.Path, Config, StDType.F32, seed: (ulong)seed);
            Engine = CausalLM.Load(_dir.Path, new ModelOptions { DType = "float32" });
            Training = TrainingModel.Load(_dir.Path);
        }

        public void Dispose()
        {
            Training.Dispose();
            Engine.Dispose();
            _dir.Dispose();
        }
    }

    private static float[] ToFloats(Tensor t) => t.detach().contiguous().to(ScalarType.Float32).data<float>().ToArray();

    [Fact]
    public void WrittenMemoriesEqualTheEncoders()
    {
        using var m = new Models(21);
        var (cfg, model, tm) = (m.Config, m.Engine, m.Training);
        int[] prefix = [1, 2, 3];
        var refs = new[] { new[] { 5, 6, 7, 8, 9, 10, 11 }, new[] { 20, 21 }, new[] { 30, 31, 32, 33, 34, 35, 36, 37, 38, 39 } };
        var enc = new MemoryEncoder(model, new PrefixTokenizer(prefix)).Encode(refs);
        var (keys, values) = tm.EncodeMemories(refs, prefix);
        int L = 2, H = 2, T = 3, D = cfg.HeadDim;
        for (int l = 0; l < L; l++)
        {
            var k = ToFloats(keys[l]);   // [N, H, T, D]
            var v = ToFloats(values[l]);
            for (int b = 0; b < refs.Length; b++)
                for (int h = 0; h < H; h++)
                    for (int t = 0; t < T; t++)
                        for (int d = 0; d < D; d++)
                        {
                            int src = ((b * H + h) * T + t) * D + d, dst = ((l * H + h) * T + t) * D + d;
                            Assert.True(Math.Abs(k[src] - BFloat16.ToFloat(enc[b].Keys[dst])) < 0.02, $"key l{l} b{b} h{h} t{t}");
                            Assert.True(Math.Abs(v[src] - BFloat16.ToFloat(enc[b].Values[dst])) < 0.02, $"value l{l} b{b} h{h} t{t}");
                        }
        }
        // Gradients reach the weights through the kept keys and values.
        var loss = keys[1].sum() + values[0].pow(2).sum();
        loss.backward();
        var g = tm.NamedParameters().First(p => p.Name == "model.layers.0.self_attn.k_proj.weight").Parameter.grad;
        Assert.NotNull(g);
        Assert.True(g!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void LogitsWithMemoryEqualTheEngines()
    {
        using var m = new Models(22);
        var (cfg, model, tm) = (m.Config, m.Engine, m.Training);
        int[] prefix = [1, 2, 3];
        int P = prefix.Length, R = cfg.Memory!.ReferenceMaxTokens, T = 3, K = cfg.Memory.MemoriesPerChunk, M = K * T;
        var refs = new[] { new[] { 5, 6, 7, 8, 9, 10, 11 }, new[] { 40, 41, 42, 43 } };
        var context = new[] { 1, 9, 20, 33, 41, 7, 12 };
        var enc = new MemoryEncoder(model, new PrefixTokenizer(prefix)).Encode(refs);

        using var pool = model.CreatePool(1, 64);
        model.Forward(new StepBatch { TokenIds = prefix, Positions = [0, 1, 2], Sequences = [new SequenceSlice(0, 0, P, 0)] }, pool);
        model.WriteMemories(pool, 0, P, enc.Select(e => (e.Keys, e.Values)).ToList());
        var positions = Enumerable.Range(0, context.Length).Select(i => P + R + i).ToArray();
        var engine = model.Forward(new StepBatch
        {
            TokenIds = context, Positions = positions,
            Sequences = [new SequenceSlice(0, 0, context.Length, P + M, AllLogits: true, MemoryStart: P, MemoryLength: M, MemoryValid: refs.Length * T)],
        }, pool)[0];

        using var noGrad = no_grad();
        int S = P + context.Length;
        using var inputs = tm.MemoryInputsFor(refs, prefix, sparse: true, S, P, context.Length);
        var ids = tensor(prefix.Concat(context).Select(t => (long)t).ToArray(), [1, S], ScalarType.Int64);
        var logits = ToFloats(tm.Forward(ids, [0, 1, 2, .. positions], inputs));
        int V = cfg.VocabSize;
        double maxErr = 0;
        for (int r = 0; r < context.Length; r++)
            for (int i = 0; i < V; i++) maxErr = Math.Max(maxErr, Math.Abs(engine[r * V + i] - logits[(P + r) * V + i]));
        // The engine reads bf16-stored memories, training its own float32 ones: agreement to bf16 rounding.
        Assert.True(maxErr < 0.02, $"max |engine - training| = {maxErr:E3}");

        // And the memories matter: the same forward without them differs.
        var plain = ToFloats(tm.Forward(ids, [0, 1, 2, .. positions], null));
        Assert.True(Enumerable.Range(0, V).Max(i => Math.Abs(plain[(S - 1) * V + i] - logits[(S - 1) * V + i])) > 1e-3);
    }

    [Fact]
    public void LogitsWithoutMemoryEqualTheEngines()
    {
        using var m = new Models(23);
        var (cfg, model, tm) = (m.Config, m.Engine, m.Training);
        var context = new[] { 1, 9, 20, 33, 41, 7, 12, 50, 51 };
        using var pool = model.CreatePool(1, 32);
        var engine = model.Forward(new StepBatch { TokenIds = context, Positions = Enumerable.Range(0, context.Length).ToArray(), Sequences = [new SequenceSlice(0, 0, context.Length, 0, AllLogits: true)] }, pool)[0];
        using var noGrad = no_grad();
        var ids = tensor(context.Select(t => (long)t).ToArray(), [1, context.Length], ScalarType.Int64);
        var logits = ToFloats(tm.Forward(ids, Enumerable.Range(0, context.Length).ToArray(), null));
        Assert.True(engine.Zip(logits).Max(p => Math.Abs(p.First - p.Second)) < 1e-4);
    }

    [Fact]
    public void WithoutSparsificationEachMemoryShowsExactlyItsOwnTokens()
    {
        using var m = new Models(24);
        var (cfg, tm) = (m.Config, m.Training);
        int[] prefix = [1, 2, 3];
        var refs = new[] { new[] { 5, 6, 7, 8, 9, 10, 11 }, new[] { 40, 41 } };
        using var noGrad = no_grad();
        using var inputs = tm.MemoryInputsFor(refs, prefix, sparse: false, rows: 6, prefixLength: 3, contextLength: 3);
        Assert.Equal([1L, 2L, 14L, cfg.HeadDim], inputs.Keys[0].shape);   // 2 memories × the longest reference (7)
        var visible = inputs.Visible.data<bool>().ToArray();   // [1, 6, 14]
        for (int row = 0; row < 6; row++)
            for (int slot = 0; slot < 14; slot++)
            {
                bool expected = row >= 3 && (slot < 7 || slot - 7 < 2);
                Assert.Equal(expected, visible[row * 14 + slot]);
            }
    }

    [Fact]
    public void TrainingLowersTheLossAndResumesFromItsCheckpoint()
    {
        var cfg = Cfg();
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, cfg, StDType.F32, seed: 25);
        int[] prefix = [1, 2, 3];
        var references = new List<int[]> { new[] { 5, 6, 7, 8 }, new[] { 9, 10, 11, 12 }, new[] { 13, 14, 15 } };
        // Copy the token after the memory marker 60 from whichever reference the chunk reads: solvable only through memory.
        TrainSample Sample(int step, int i)
        {
            int r = (step * 7 + i) % references.Count;
            int[] toks = [1, 60, references[r][0], references[r][1]];
            return new TrainSample(toks, [false, false, true, true], [[r]]);
        }
        var stage = new StageOptions("t", Steps: 30, BatchSize: 6, Lr: 1e-2, MinLr: 1e-3, WarmupSteps: 3, CheckpointEvery: 10);
        string ck = Path.Combine(tmp.Path, "ck");
        var losses = new List<double>();
        using var stop = new CancellationTokenSource();
        using (var tm = TrainingModel.Create(cfg, 1))
            Assert.Throws<OperationCanceledException>(() => new Trainer(tm, references, prefix).Run(stage, Sample, ck, r =>
            {
                losses.Add(r.Loss);
                if (r.Step == 20) stop.Cancel();   // interrupted after the step-20 checkpoint
            }, ct: stop.Token));
        Assert.True(losses[^1] < losses[0] * 0.7, $"loss {losses[0]:F3} -> {losses[^1]:F3}");

        // A resumed run continues from step 20 and ends where an uninterrupted run ends.
        var resumed = new List<StepReport>();
        using (var tm = TrainingModel.Create(cfg, 1))
            new Trainer(tm, references, prefix).Run(stage, Sample, ck, resumed.Add);
        Assert.Equal(21, resumed[0].Step);
        var straight = new List<StepReport>();
        using (var tm = TrainingModel.Create(cfg, 1))
            new Trainer(tm, references, prefix).Run(stage, Sample, Path.Combine(tmp.Path, "ck2"), straight.Add);
        Assert.Equal(straight[^1].Loss, resumed[^1].Loss, 4);
    }
}
