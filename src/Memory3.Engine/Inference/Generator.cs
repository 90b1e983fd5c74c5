using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Inference;

public enum FinishReason { Stop, Length }

/// <summary>One generated token: its id, the text it completes (possibly empty while a character or a possible
/// stop string is held back), its logprob, and on the last event the finish reason.</summary>
public sealed record GenerationEvent(int TokenId, string Text, float Logprob, TokenLogprob[]? TopLogprobs, FinishReason? Finish);

/// <summary>
/// Generates one sequence at a time on the calling thread: chunked prefill, then decode with sampling,
/// stop tokens, stop strings and streaming detokenization. The command line uses it; the server's
/// continuous-batching engine runs the same pieces under its scheduler.
/// </summary>
public sealed class Generator
{
    private readonly CausalLM _model;
    private readonly ITokenizer _tokenizer;

    public int PrefillChunk { get; init; } = 512;

    public Generator(CausalLM model, ITokenizer tokenizer)
    {
        _model = model;
        _tokenizer = tokenizer;
    }

    public int[] EncodePrompt(string prompt) => _tokenizer.Encode(prompt, addSpecialTokens: true);

    public IEnumerable<GenerationEvent> Generate(string prompt, SamplingParams p) => Generate(EncodePrompt(prompt), p);

    public IEnumerable<GenerationEvent> Generate(int[] prompt, SamplingParams p)
    {
        int vocab = _model.Config.VocabSize;
        p.Validate(vocab);
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty", nameof(prompt));
        int context = _model.Config.MaxPositionEmbeddings;
        if (prompt.Length >= context)
            throw new ArgumentException($"the prompt has {prompt.Length} tokens; the model's context is {context}", nameof(prompt));
        int maxNew = Math.Min(p.MaxTokens, context - prompt.Length);

        using var pool = _model.CreatePool(1, prompt.Length + maxNew);
        int slot = pool.Allocate();
        var sampler = new Sampler(p, vocab);
        var detok = new StreamingDetokenizer(_tokenizer);
        var stops = new StopChecker(p.Stop);
        var stopIds = new HashSet<int>(p.StopTokenIds);
        if (!p.IgnoreEos) foreach (var e in _tokenizer.EosTokenIds) stopIds.Add(e);
        if (!p.IgnoreEos) foreach (var e in _model.Config.EosTokenIds) stopIds.Add(e);
        int tokenizerVocab = _tokenizer.VocabSize;
        var generated = new List<int>(maxNew);

        float[] logits = [];
        for (int done = 0; done < prompt.Length; done += PrefillChunk)
        {
            int n = Math.Min(PrefillChunk, prompt.Length - done);
            logits = _model.Forward(StepBatch.Contiguous([(slot, done, prompt[done..(done + n)])]), pool)[0];
        }

        for (int i = 0; i < maxNew; i++)
        {
            // Rows past the tokenizer's vocabulary (padded embeddings) can never be emitted.
            for (int v = tokenizerVocab; v < logits.Length; v++) logits[v] = float.NegativeInfinity;
            var r = sampler.Sample(logits, prompt, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(generated));
            generated.Add(r.TokenId);
            if (stopIds.Contains(r.TokenId))
            {
                yield return new GenerationEvent(r.TokenId, FlushAll(detok, stops, out _), r.Logprob, r.TopLogprobs, FinishReason.Stop);
                yield break;
            }
            var piece = stops.Push(detok.Push(r.TokenId));
            if (piece.Stopped)
            {
                yield return new GenerationEvent(r.TokenId, piece.Text, r.Logprob, r.TopLogprobs, FinishReason.Stop);
                yield break;
            }
            if (i == maxNew - 1)
            {
                var last = piece.Text + FlushAll(detok, stops, out bool stopped);
                yield return new GenerationEvent(r.TokenId, last, r.Logprob, r.TopLogprobs, stopped ? FinishReason.Stop : FinishReason.Length);
                yield break;
            }
            yield return new GenerationEvent(r.TokenId, piece.Text, r.Logprob, r.TopLogprobs, null);
            logits = _model.Forward(StepBatch.Contiguous([(slot, prompt.Length + i, [r.TokenId])]), pool)[0];
        }
        if (maxNew == 0) yield return new GenerationEvent(-1, "", 0, null, FinishReason.Length);
    }

    private static string FlushAll(StreamingDetokenizer detok, StopChecker stops, out bool stopped)
    {
        var tail = detok.Flush();
        var text = "";
        stopped = false;
        if (tail.Length > 0)
        {
            var o = stops.Push(tail);
            text = o.Text;
            stopped = o.Stopped;
        }
        return stopped ? text : text + stops.Flush();
    }
}
