using Memory3.Engine.Inference;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Inference;

/// <summary>A tiny random model with its trained tokenizer, written once for the class.</summary>
public sealed class TinyModelFixture : IDisposable
{
    private readonly TempDir _dir = new();
    public string Dir => _dir.Path;
    public CausalLM Model { get; }
    public ITokenizer Tokenizer { get; }

    public TinyModelFixture()
    {
        var cfg = RandomModel.Preset("tiny", "LlamaForCausalLM");
        var tok = RandomTokenizer.Write(Dir, cfg.VocabSize);
        RandomModel.Write(Dir, cfg with { BosTokenId = tok.BosId, EosTokenIds = [tok.EosId] }, StDType.BF16, seed: 42);
        Model = CausalLM.Load(Dir, new ModelOptions { DType = "float32" });
        Tokenizer = TokenizerLoader.Load(Dir);
    }

    public void Dispose()
    {
        Model.Dispose();
        _dir.Dispose();
    }
}

public class GeneratorTests(TinyModelFixture f) : IClassFixture<TinyModelFixture>
{
    private (string Text, List<int> Ids, FinishReason Finish) Run(string prompt, SamplingParams p)
    {
        var gen = new Generator(f.Model, f.Tokenizer);
        var text = "";
        var ids = new List<int>();
        FinishReason? finish = null;
        foreach (var e in gen.Generate(prompt, p))
        {
            text += e.Text;
            ids.Add(e.TokenId);
            finish = e.Finish;
        }
        return (text, ids, finish!.Value);
    }

    [Fact]
    public void MaxTokensEndsWithLengthAndTextEqualsTheDecodedTokens()
    {
        var (text, ids, finish) = Run("The memory layers", new SamplingParams { Temperature = 0, MaxTokens = 24, IgnoreEos = true });
        Assert.Equal(24, ids.Count);
        Assert.Equal(FinishReason.Length, finish);
        Assert.Equal(f.Tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true), text);
    }

    [Fact]
    public void ASeedReproducesASampledRunAndAnotherSeedDiffers()
    {
        var p = new SamplingParams { Temperature = 1.5f, MaxTokens = 30, Seed = 7, IgnoreEos = true };
        var a = Run("Explicit memory", p);
        var b = Run("Explicit memory", p);
        var c = Run("Explicit memory", p with { Seed = 8 });
        Assert.Equal(a.Ids, b.Ids);
        Assert.NotEqual(a.Ids, c.Ids);
    }

    [Fact]
    public void AStopStringSpanningTokensEndsGenerationAndIsNotReturned()
    {
        var free = Run("Retrieval happens every", new SamplingParams { Temperature = 0, MaxTokens = 40, IgnoreEos = true });
        // A stop string that starts inside one token's text and ends inside a later one.
        int at = -1, len = 0;
        var pieces = free.Ids.Select(id => f.Tokenizer.Decode(new[] { id }, skipSpecialTokens: true)).ToList();
        int offset = 0;
        for (int i = 2; i < pieces.Count - 2 && at < 0; i++)
        {
            offset = string.Concat(pieces.Take(i)).Length;
            if (pieces[i].Length >= 2 && pieces[i + 1].Length >= 1) { at = offset + 1; len = pieces[i].Length - 1 + pieces[i + 1].Length; }
        }
        Assert.True(at > 0, "need a multi-character token to split");
        var stop = free.Text.Substring(at, len);
        var stopped = Run("Retrieval happens every", new SamplingParams { Temperature = 0, MaxTokens = 40, IgnoreEos = true, Stop = [stop] });
        Assert.Equal(FinishReason.Stop, stopped.Finish);
        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.DoesNotContain(stop, stopped.Text);
    }

    [Fact]
    public void AnEosTokenEndsWithStop()
    {
        int eos = f.Tokenizer.EosTokenIds[0];
        var r = Run("Hello", new SamplingParams { Temperature = 0, MaxTokens = 10, LogitBias = new Dictionary<int, float> { [eos] = 100 } });
        Assert.Equal(FinishReason.Stop, r.Finish);
        Assert.Single(r.Ids);
        Assert.Equal("", r.Text);
        var ignored = Run("Hello", new SamplingParams { Temperature = 0, MaxTokens = 5, IgnoreEos = true, LogitBias = new Dictionary<int, float> { [eos] = 100 } });
        Assert.Equal(FinishReason.Length, ignored.Finish);
    }

    [Fact]
    public void StopTokenIdsEndGeneration()
    {
        var free = Run("Tokens", new SamplingParams { Temperature = 0, MaxTokens = 12, IgnoreEos = true });
        var r = Run("Tokens", new SamplingParams { Temperature = 0, MaxTokens = 12, IgnoreEos = true, StopTokenIds = [free.Ids[3]] });
        Assert.Equal(FinishReason.Stop, r.Finish);
        Assert.Equal(free.Ids.IndexOf(free.Ids[3]) + 1, r.Ids.Count);
    }

    [Fact]
    public void LogprobsComeWithTheirAlternatives()
    {
        var gen = new Generator(f.Model, f.Tokenizer);
        var events = gen.Generate("A", new SamplingParams { Temperature = 0, MaxTokens = 3, Logprobs = 4, IgnoreEos = true }).ToList();
        foreach (var e in events)
        {
            Assert.NotNull(e.TopLogprobs);
            Assert.Equal(4, e.TopLogprobs!.Length);
            Assert.Equal(e.TokenId, e.TopLogprobs[0].TokenId); // greedy picks the most likely
            Assert.Equal(e.TopLogprobs[0].Logprob, e.Logprob, 4);
            Assert.True(e.Logprob <= 0);
        }
    }

    [Fact]
    public void APromptLongerThanTheContextIsRefused()
    {
        var gen = new Generator(f.Model, f.Tokenizer);
        var prompt = Enumerable.Repeat(5, f.Model.Config.MaxPositionEmbeddings).ToArray();
        Assert.Throws<ArgumentException>(() => gen.Generate(prompt, new SamplingParams()).ToList());
    }
}
