using Memory3.Engine.Inference;
using Memory3.Engine.Memory;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Memory;

public class MemoryScheduleTests
{
    /// <summary>Returns a distinct random memory per query and records every query (a seam we own).</summary>
    private sealed class RecordingSource(ModelConfig cfg, bool empty = false) : IMemorySource
    {
        public List<string> Queries { get; } = [];

        public ValueTask<RetrievedMemories> RetrieveAsync(MemoryQuery query, CancellationToken ct = default)
        {
            Queries.Add(query.Text);
            if (empty) return ValueTask.FromResult(RetrievedMemories.None);
            var m = cfg.Memory!;
            int n = m.MemoryLayers * m.MemoryKvHeads * m.MemoryTokensPerHead * cfg.HeadDim;
            var rng = new Random(Queries.Count);
            var mems = new List<DecodedMemory>();
            var cites = new List<MemoryCitation>();
            for (int j = 0; j < 2; j++)
            {
                ushort[] R() => Enumerable.Range(0, n).Select(_ => BFloat16.FromFloat((float)(rng.NextDouble() * 4 - 2))).ToArray();
                var id = $"q{Queries.Count}m{j}";
                mems.Add(new DecodedMemory(id, "default", "text " + id, new ushort[n / cfg.HeadDim], R(), R()));
                cites.Add(new MemoryCitation(id, "default", "text " + id, 1.0 / (j + 1)));
            }
            return ValueTask.FromResult(new RetrievedMemories(mems, cites));
        }
    }

    private static (CausalLM Model, ITokenizer Tok, TempDir Dir) TinyMemoryModel()
    {
        var dir = new TempDir();
        var cfg = RandomModel.Preset("tiny");
        var tok = RandomTokenizer.Write(dir.Path, cfg.VocabSize);
        RandomModel.Write(dir.Path, cfg with { BosTokenId = tok.BosId, EosTokenIds = [tok.EosId] }, StDType.BF16, seed: 2);
        return (CausalLM.Load(dir.Path, new ModelOptions { DType = "float32" }), TokenizerLoader.Load(dir.Path), dir);
    }

    [Fact]
    public void PromptChunksAndDecodeRefreshesHappenExactlyAtTheBoundaries()
    {
        var (model, tok, dir) = TinyMemoryModel();
        using var _ = dir;
        using var __ = model;
        var source = new RecordingSource(model.Config);
        var gen = new Generator(model, tok) { Memory = new MemoryReadOptions(source) };
        var prompt = Enumerable.Range(0, 150).Select(i => 40 + i % 200).ToArray();
        var events = gen.Generate(prompt, new SamplingParams { Temperature = 0, MaxTokens = 140, IgnoreEos = true }).ToList();
        var generated = events.Select(e => e.TokenId).ToArray();
        Assert.Equal(140, generated.Length);

        string D(ReadOnlySpan<int> ids) => tok.Decode(ids, skipSpecialTokens: true);
        var expectedQueries = new[]
        {
            D(prompt.AsSpan(0, 64)), D(prompt.AsSpan(64, 64)), D(prompt.AsSpan(128, 22)),   // one per prompt chunk
            D(generated.AsSpan(0, 64)), D(generated.AsSpan(64, 64)),                         // before generated tokens 64 and 128
        };
        Assert.Equal(expectedQueries, source.Queries);

        var w = gen.Windows;
        Assert.Equal(["prompt", "prompt", "prompt", "decode", "decode", "decode"], w.Select(x => x.Phase));
        Assert.Equal([(0, 64), (64, 128), (128, 150), (0, 64), (64, 128), (128, 140)], w.Select(x => (x.Start, x.End)));
        // The first decoded chunk inherits the last prompt chunk's memories.
        Assert.Equal(w[2].Citations, w[3].Citations);
        Assert.Equal(["q4m0", "q4m1"], w[4].Citations.Select(c => c.Id));
        // The paper's protocol: 128 in, 128 out → 3 retrievals.
        source.Queries.Clear();
        gen.Generate(prompt[..128], new SamplingParams { Temperature = 0, MaxTokens = 128, IgnoreEos = true }).ToList();
        Assert.Equal(3, source.Queries.Count);
    }

    [Fact]
    public void AttachedMemoriesChangeWhatIsGenerated()
    {
        var (model, tok, dir) = TinyMemoryModel();
        using var _ = dir;
        using var __ = model;
        var p = new SamplingParams { Temperature = 0, MaxTokens = 20, IgnoreEos = true };
        var prompt = tok.Encode("Explicit memory is read every sixty-four tokens.");
        var with = new Generator(model, tok) { Memory = new MemoryReadOptions(new RecordingSource(model.Config)) }.Generate(prompt, p).Select(e => e.TokenId).ToList();
        var emptyBank = new Generator(model, tok) { Memory = new MemoryReadOptions(new RecordingSource(model.Config, empty: true)) }.Generate(prompt, p).Select(e => e.TokenId).ToList();
        Assert.NotEqual(with, emptyBank);
    }
}
