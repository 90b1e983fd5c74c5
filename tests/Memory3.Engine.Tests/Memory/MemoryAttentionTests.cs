using Memory3.Engine.Memory.Encode;
using Memory3.Engine.Model;
using Memory3.Engine.Tests.Model;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Memory;

public class MemoryAttentionTests
{
    private static ModelConfig MemCfg(int memLayers = 2, int memKv = 2, int tokensPerHead = 3) =>
        RandomModel.Make("Memory3ForCausalLM", vocab: 64, hidden: 32, ffn: 40, layers: 3, heads: 4, kvHeads: 2, tie: true) with
        {
            Memory = new MemoryConfig(memLayers, memKv, tokensPerHead, 16, 2, 64, "<s>Reference:"),
        };

    private static double[] Bf16ToDouble(ushort[] a, int offset, int n) => Enumerable.Range(0, n).Select(i => (double)BFloat16.ToFloat(a[offset + i])).ToArray();

    [Fact]
    public void SelectionKeepsTheTokensThatReceiveTheMostAttention()
    {
        // One memory layer; q and k read dims 0..7 of the normalised embedding. "Hot" tokens (id 7) live in dims
        // 0..7, every other token in dims 8..15, so only hot tokens have non-zero keys and they attend to each other.
        var cfg = RandomModel.Make("Memory3ForCausalLM", vocab: 32, hidden: 16, ffn: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 8, tie: true) with
        {
            Memory = new MemoryConfig(1, 1, 4, 32, 1, 64, "<s>Reference:"),
        };
        using var tmp = new TempDir();
        cfg.Save(tmp.Path);
        var rng = new Random(5);
        var w = new SafeTensorsWriter();
        var emb = new float[32 * 16];
        for (int t = 0; t < 32; t++)
            for (int d = 0; d < 16; d++)
                emb[t * 16 + d] = t == 7 ? (d < 8 ? 1f : 0f) : (d >= 8 ? (float)(rng.NextDouble() * 2 - 1) : 0f);
        float[] Eye(int rows, int cols) { var a = new float[rows * cols]; for (int i = 0; i < Math.Min(rows, cols); i++) a[i * cols + i] = 1; return a; }
        float[] Rand(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        float[] Ones(int n) => Enumerable.Repeat(1f, n).ToArray();
        w.Add("model.embed_tokens.weight", emb, [32, 16], StDType.F32);
        w.Add("model.layers.0.input_layernorm.weight", Ones(16), [16], StDType.F32);
        var q = new float[16 * 16];
        for (int i = 0; i < 8; i++) { q[i * 16 + i] = 1; q[(8 + i) * 16 + i] = 1; }   // both query heads read dims 0..7
        w.Add("model.layers.0.self_attn.q_proj.weight", q, [16, 16], StDType.F32);
        w.Add("model.layers.0.self_attn.k_proj.weight", Eye(8, 16), [8, 16], StDType.F32);
        w.Add("model.layers.0.self_attn.v_proj.weight", Rand(8 * 16), [8, 16], StDType.F32);
        w.Add("model.layers.0.self_attn.o_proj.weight", Rand(16 * 16), [16, 16], StDType.F32);
        w.Add("model.layers.0.post_attention_layernorm.weight", Ones(16), [16], StDType.F32);
        w.Add("model.layers.0.mlp.gate_proj.weight", Rand(8 * 16), [8, 16], StDType.F32);
        w.Add("model.layers.0.mlp.up_proj.weight", Rand(8 * 16), [8, 16], StDType.F32);
        w.Add("model.layers.0.mlp.down_proj.weight", Rand(16 * 8), [16, 8], StDType.F32);
        w.Add("model.norm.weight", Ones(16), [16], StDType.F32);
        w.Write(Path.Combine(tmp.Path, "model.safetensors"));

        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = "float32" });
        int[] prefix = [1, 7];   // the prefix holds a hot token too: it must never be selected
        var enc = new MemoryEncoder(model, new PrefixTokenizer(prefix));
        var reference = new[] { 3, 4, 7, 5, 6, 7, 8, 9, 10, 11, 7, 12, 13, 14, 15, 16, 17, 7, 18, 19 };
        var mem = enc.Encode([reference])[0];
        var selected = mem.Positions.Select(p => (int)p).Order().ToArray();
        var expected = Enumerable.Range(0, reference.Length).Where(i => reference[i] == 7).Select(i => prefix.Length + i).ToArray();
        Assert.Equal(expected, selected);
    }

    [Fact]
    public void SelectionAndStoredKeysMatchAHandComputation()
    {
        // GQA: 4 query heads over 2 KV heads; scores summed over the group, un-rotated, no causal mask, prefix excluded.
        var cfg = MemCfg(memLayers: 1, tokensPerHead: 3);
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, cfg, StDType.F32, seed: 21);
        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = "float32" });
        int[] prefix = [1, 2];
        var reference = new[] { 10, 11, 12, 13, 14, 15, 16, 17, 18 };
        var mem = new MemoryEncoder(model, new PrefixTokenizer(prefix)).Encode([reference])[0];

        var refModel = new ReferenceLlama(tmp.Path);
        var all = prefix.Concat(reference).ToArray();
        var (Q, K) = refModel.Projections(all, 0);
        int D = cfg.HeadDim, G = cfg.NumAttentionHeads / cfg.NumKeyValueHeads;
        for (int h = 0; h < cfg.NumKeyValueHeads; h++)
        {
            var wj = new double[all.Length];
            for (int j = prefix.Length; j < all.Length; j++)
                for (int i = prefix.Length; i < all.Length; i++)
                    for (int g = 0; g < G; g++)
                    {
                        int qh = h * G + g;
                        double dot = 0;
                        for (int e = 0; e < D; e++) dot += Q[i][qh * D + e] * K[j][h * D + e];
                        wj[j] += Math.Exp(dot / Math.Sqrt(D));
                    }
            var top = Enumerable.Range(prefix.Length, reference.Length).OrderByDescending(j => wj[j]).Take(3).ToArray();
            var got = Enumerable.Range(0, 3).Select(t => (int)mem.Positions[h * 3 + t]).ToArray();
            Assert.Equal(top, got);
            // Stored keys are rotated at their encode position.
            for (int t = 0; t < 3; t++)
            {
                var kj = K[top[t]].Skip(h * D).Take(D).ToArray();
                ReferenceLlama.RotateInPlace(kj, 1, D, top[t], cfg.RopeTheta);
                var stored = Bf16ToDouble(mem.Keys, (h * 3 + t) * D, D);
                for (int e = 0; e < D; e++) Assert.True(Math.Abs(stored[e] - kj[e]) < 0.02 * Math.Max(1, Math.Abs(kj[e])), $"head {h} token {t} dim {e}: {stored[e]} vs {kj[e]}");
            }
        }
    }

    [Fact]
    public void BatchedEncodingEqualsOneAtATime()
    {
        var cfg = MemCfg(memLayers: 2);
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, cfg, StDType.F32, seed: 4);
        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = "float32" });
        var enc = new MemoryEncoder(model, new PrefixTokenizer([1, 2, 3]));
        var refs = new[] { new[] { 5, 6, 7, 8, 9, 10, 11 }, new[] { 20, 21 }, new[] { 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42 } };
        var batched = enc.Encode(refs);
        for (int b = 0; b < refs.Length; b++)
        {
            var alone = enc.Encode([refs[b]])[0];
            Assert.Equal(alone.Positions, batched[b].Positions);
            var diff = alone.Keys.Zip(batched[b].Keys).Max(p => Math.Abs(BFloat16.ToFloat(p.First) - BFloat16.ToFloat(p.Second)));
            Assert.True(diff < 0.05, $"reference {b}: key difference {diff}");
        }
        // A two-token reference fills three slots by repeating its best tokens, never the prefix.
        Assert.All(batched[1].Positions, p => Assert.InRange(p, 3, 4));
    }

    [Fact]
    public void AttentionOverPrefixMemoryAndContextEqualsAHandComputation()
    {
        // 3 layers, memory in layers 0-1, memory on KV head 0 only; 2 memory slots of 3 tokens, only the first filled.
        var cfg = MemCfg(memLayers: 2, memKv: 1, tokensPerHead: 3);
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, cfg, StDType.F32, seed: 13);
        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = "float32" });
        int[] prefix = [1, 2, 3];
        int P = prefix.Length, R = cfg.Memory!.ReferenceMaxTokens, T = 3, M = 2 * T, D = cfg.HeadDim;
        var context = new[] { 9, 20, 33, 41, 7 };
        var rng = new Random(3);
        ushort[] RandBf16(int n) => Enumerable.Range(0, n).Select(_ => BFloat16.FromFloat((float)(rng.NextDouble() * 2 - 1))).ToArray();
        var memK = RandBf16(2 * 1 * T * D);
        var memV = RandBf16(2 * 1 * T * D);
        var garbageK = RandBf16(2 * 1 * T * D);   // written into the second slot but marked empty: must not be seen

        using var pool = model.CreatePool(1, 32);
        var pre = model.Forward(new StepBatch { TokenIds = prefix, Positions = [0, 1, 2], Sequences = [new SequenceSlice(0, 0, P, 0)] }, pool);
        model.WriteMemories(pool, 0, P, [(memK, memV), (garbageK, garbageK)]);
        var ctxPositions = Enumerable.Range(0, context.Length).Select(i => P + R + i).ToArray();
        var got = model.Forward(new StepBatch
        {
            TokenIds = context, Positions = ctxPositions,
            Sequences = [new SequenceSlice(0, 0, context.Length, P + M, AllLogits: true, MemoryStart: P, MemoryLength: M, MemoryValid: T)],
        }, pool)[0];

        var reference = new ReferenceLlama(tmp.Path).Forward(prefix.Concat(context).ToArray(), [0, 1, 2, .. ctxPositions],
            (layer, kvHead) => layer < 2 && kvHead == 0
                ? Enumerable.Range(0, T).Select(t => (Bf16ToDouble(memK, (layer * T + t) * D, D), Bf16ToDouble(memV, (layer * T + t) * D, D))).ToList()
                : [],
            memoryFrom: P);
        int V = cfg.VocabSize;
        double maxErr = 0;
        for (int r = 0; r < context.Length; r++)
            for (int i = 0; i < V; i++) maxErr = Math.Max(maxErr, Math.Abs(got[r * V + i] - reference[P + r][i]));
        Assert.True(maxErr < 1e-4, $"max |logit - hand computation| = {maxErr:E3}");

        // One decode step more (the batched decode path) also matches: a sixth context token.
        var next = model.Forward(new StepBatch
        {
            TokenIds = [12], Positions = [P + R + context.Length],
            Sequences = [new SequenceSlice(0, 0, 1, P + M + context.Length, MemoryStart: P, MemoryLength: M, MemoryValid: T)],
        }, pool)[0];
        var ctx6 = context.Append(12).ToArray();
        var ref6 = new ReferenceLlama(tmp.Path).Forward(prefix.Concat(ctx6).ToArray(), [0, 1, 2, .. Enumerable.Range(0, 6).Select(i => P + R + i)],
            (layer, kvHead) => layer < 2 && kvHead == 0
                ? Enumerable.Range(0, T).Select(t => (Bf16ToDouble(memK, (layer * T + t) * D, D), Bf16ToDouble(memV, (layer * T + t) * D, D))).ToList()
                : [],
            memoryFrom: P);
        Assert.True(Enumerable.Range(0, V).Max(i => Math.Abs(next[i] - ref6[^1][i])) < 1e-4);

        // The memory matters: without it the logits differ.
        var noMemory = new ReferenceLlama(tmp.Path).Forward(prefix.Concat(context).ToArray(), [0, 1, 2, .. ctxPositions], null, P);
        Assert.True(Enumerable.Range(0, V).Max(i => Math.Abs(noMemory[^1][i] - reference[^1][i])) > 1e-3);
    }

    [Fact]
    public void MemoryOffGivesBitIdenticalLogitsToAModelWithoutMemoryKeys()
    {
        using var tmp = new TempDir();
        var memCfg = MemCfg();
        RandomModel.Write(tmp.Sub("m3"), memCfg, StDType.BF16, seed: 8);
        RandomModel.Write(tmp.Sub("llama"), memCfg with { Architecture = "LlamaForCausalLM", Memory = null }, StDType.BF16, seed: 8);
        float[] Run(string dir)
        {
            using var model = CausalLM.Load(dir);
            using var pool = model.CreatePool(2, 32);
            return model.Forward(StepBatch.Contiguous([(1, 0, new[] { 4, 8, 15, 16, 23, 42 })], allLogits: true), pool)[0];
        }
        Assert.Equal(Run(tmp.Sub("llama")), Run(tmp.Sub("m3")));
    }
}
