using Memory3.Engine.Model;

namespace Memory3.Engine.Tests.Model;

public class DecoderNumericsTests
{
    internal static ModelConfig LlamaCfg() => RandomModel.Make("LlamaForCausalLM", vocab: 96, hidden: 32, ffn: 48, layers: 2, heads: 4, kvHeads: 4, tie: false,
        ropeScaling: new RopeScaling("llama3", 8.0, 1.0, 4.0, 16)) with { RopeTheta = 500000 };
    internal static ModelConfig Qwen2Cfg() => RandomModel.Make("Qwen2ForCausalLM", vocab: 80, hidden: 32, ffn: 40, layers: 2, heads: 4, kvHeads: 2, tie: true);
    internal static ModelConfig GqaCfg() => RandomModel.Make("MistralForCausalLM", vocab: 72, hidden: 48, ffn: 64, layers: 3, heads: 6, kvHeads: 2, headDim: 16, tie: false);

    public static TheoryData<string> Configs => new() { "llama", "qwen2", "gqa" };

    internal static ModelConfig Cfg(string name) => name switch { "llama" => LlamaCfg(), "qwen2" => Qwen2Cfg(), _ => GqaCfg() };

    private static int[] Tokens(int n, int vocab, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => r.Next(vocab)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void Float32LogitsMatchTheDoublePrecisionReference(string name)
    {
        using var tmp = new TempDir();
        var cfg = Cfg(name);
        RandomModel.Write(tmp.Path, cfg, StDType.F32, seed: 7);
        var tokens = Tokens(13, cfg.VocabSize, 1);
        var expected = new ReferenceLlama(tmp.Path).Forward(tokens);

        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = "float32" });
        using var pool = model.CreatePool(2, 32);
        var got = model.Forward(StepBatch.Contiguous([(0, 0, tokens)], allLogits: true), pool)[0];

        double maxErr = 0;
        for (int t = 0; t < tokens.Length; t++)
            for (int i = 0; i < cfg.VocabSize; i++)
                maxErr = Math.Max(maxErr, Math.Abs(got[t * cfg.VocabSize + i] - expected[t][i]));
        Assert.True(maxErr < 1e-4, $"max |logit - reference| = {maxErr:E3}");
        // The check can fail: the logits are not all alike.
        Assert.True(expected[^1].Max() - expected[^1].Min() > 0.5);
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void IncrementalDecodingThroughTheSlotPoolEqualsOneFullForward(string name)
    {
        using var tmp = new TempDir();
        var cfg = Cfg(name);
        RandomModel.Write(tmp.Path, cfg, StDType.F32, seed: 3);
        var tokens = Tokens(20, cfg.VocabSize, 2);
        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = "float32" });
        using var pool = model.CreatePool(3, 32);
        var full = model.Forward(StepBatch.Contiguous([(0, 0, tokens)], allLogits: true), pool)[0];

        // Same tokens into another slot: a 7-token prefill chunk, a 5-token chunk, then one token at a time.
        int slot = 2, done = 0;
        var steps = new List<int> { 7, 5 };
        while (done + steps.Sum() < tokens.Length) steps.Add(1);
        foreach (var n in steps)
        {
            var chunk = tokens[done..(done + n)];
            var logits = model.Forward(StepBatch.Contiguous([(slot, done, chunk)]), pool)[0];
            int row = done + n - 1;
            for (int i = 0; i < cfg.VocabSize; i++)
                Assert.True(Math.Abs(logits[i] - full[row * cfg.VocabSize + i]) < 1e-4, $"row {row} token {i}: {logits[i]} vs {full[row * cfg.VocabSize + i]}");
            done += n;
        }
    }

    [Theory]
    [InlineData("float32")]
    [InlineData("bfloat16")]
    public void FourSequencesDecodedInOneBatchGiveTheGreedyTokensEachGivesAlone(string dtype)
    {
        using var tmp = new TempDir();
        var cfg = GqaCfg();
        RandomModel.Write(tmp.Path, cfg, StDType.BF16, seed: 11);
        using var model = CausalLM.Load(tmp.Path, new ModelOptions { DType = dtype });
        var prompts = new[] { Tokens(3, cfg.VocabSize, 10), Tokens(9, cfg.VocabSize, 11), Tokens(1, cfg.VocabSize, 12), Tokens(14, cfg.VocabSize, 13) };
        const int steps = 10;

        var alone = prompts.Select(p =>
        {
            using var pool = model.CreatePool(1, 64);
            return GreedyBatch(model, pool, [p], steps)[0];
        }).ToArray();

        using var shared = model.CreatePool(4, 64);
        var together = GreedyBatch(model, shared, prompts, steps);
        for (int s = 0; s < prompts.Length; s++) Assert.Equal(alone[s], together[s]);
        // Slots out of order (the gathered path of batched decode attention) give the same tokens.
        using var scattered = model.CreatePool(7, 64);
        var shuffled = GreedyBatch(model, scattered, prompts, steps, slotOrder: [5, 2, 6, 0]);
        for (int s = 0; s < prompts.Length; s++) Assert.Equal(alone[s], shuffled[s]);
        Assert.True(alone.Select(a => string.Join(",", a)).Distinct().Count() > 1, "sequences should differ");
    }

    /// <summary>Greedy decoding of several prompts in one flattened batch per step, prefills and decodes mixed:
    /// sequence s starts prefilling at step s, so early steps mix a prompt chunk with other sequences' decode tokens.</summary>
    internal static List<int[]> GreedyBatch(CausalLM model, KvCachePool pool, int[][] prompts, int steps, int[]? slotOrder = null)
    {
        var slots = slotOrder ?? prompts.Select(_ => pool.Allocate()).ToArray();
        var cached = new int[prompts.Length];
        var outputs = prompts.Select(_ => new List<int>()).ToArray();
        var next = new int[prompts.Length][];
        for (int s = 0; s < prompts.Length; s++) next[s] = prompts[s];
        for (int step = 0; outputs.Any(o => o.Count < steps); step++)
        {
            var active = Enumerable.Range(0, prompts.Length).Where(s => s <= step && outputs[s].Count < steps).ToList();
            var batch = StepBatch.Contiguous(active.Select(s => (slots[s], cached[s], next[s])).ToList());
            var logits = model.Forward(batch, pool);
            for (int i = 0; i < active.Count; i++)
            {
                int s = active[i];
                cached[s] += next[s].Length;
                int arg = 0;
                for (int v = 1; v < logits[i].Length; v++) if (logits[i][v] > logits[i][arg]) arg = v;
                outputs[s].Add(arg);
                next[s] = [arg];
            }
        }
        if (slotOrder is null) foreach (var s in slots) pool.Free(s);
        return outputs.Select(o => o.ToArray()).ToList();
    }
}
