using System.Runtime.InteropServices;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Inference;

/// <summary>Receives a sequence's events on the engine thread (the request it belongs to, or a test).</summary>
public interface ISequenceObserver
{
    /// <summary>The sequence got a slot and its first chunk is scheduled.</summary>
    void OnScheduled(Sequence seq);
    /// <summary>A token (or, with <see cref="TokenEvent.Error"/>, a failure). After a finishing event no more come.</summary>
    void OnEvent(Sequence seq, TokenEvent e);
}

/// <summary>
/// One choice being generated: its tokens (prompt then output), how many of them are in its KV slot, its own
/// sampler, streaming detokenizer and stop checker. Lives on the engine thread.
/// </summary>
public sealed class Sequence
{
    private readonly int[] _prompt;
    private readonly List<int> _generated;
    private readonly Sampler _sampler;
    private readonly StreamingDetokenizer? _detok;
    private readonly StopChecker _stops;
    private readonly HashSet<int> _stopIds;
    private readonly int _tokenizerVocab;

    public Sequence(long requestId, int index, int[] prompt, SamplingParams p, int vocabSize, int maxNewTokens,
        ITokenizer? tokenizer, IReadOnlyList<int> eosTokenIds, ISequenceObserver observer)
    {
        RequestId = requestId;
        Index = index;
        _prompt = prompt;
        MaxNewTokens = maxNewTokens;
        _sampler = new Sampler(p, vocabSize);
        _generated = new List<int>(Math.Min(maxNewTokens, 4096));
        _detok = tokenizer is null ? null : new StreamingDetokenizer(tokenizer);
        _stops = new StopChecker(p.Stop);
        _stopIds = new HashSet<int>(p.StopTokenIds);
        if (!p.IgnoreEos) foreach (var e in eosTokenIds) _stopIds.Add(e);
        _tokenizerVocab = tokenizer is null ? vocabSize : Math.Min(vocabSize, tokenizer.VocabSize);
        Observer = observer;
        Params = p;
    }

    public long RequestId { get; }
    public int Index { get; }
    public SamplingParams Params { get; }
    public ISequenceObserver Observer { get; }
    public int MaxNewTokens { get; }
    public int PromptLength => _prompt.Length;
    public int GeneratedCount => _generated.Count;
    /// <summary>Prompt plus generated tokens.</summary>
    public int TotalTokens => _prompt.Length + _generated.Count;
    /// <summary>Tokens whose keys and values are in the slot.</summary>
    public int NumComputed { get; internal set; }
    /// <summary>KV slot, or -1 while waiting.</summary>
    public int Slot { get; internal set; } = -1;
    public bool IsFinished { get; private set; }
    public bool InPrefill => NumComputed < _prompt.Length;
    public IReadOnlyList<int> Generated => _generated;
    /// <summary>Explicit memory; null: the plain layout (context from cache index 0 at position 0).</summary>
    public SequenceMemory? Memory { get; internal set; }
    /// <summary>KV entries the sequence's slot must hold for its whole life.</summary>
    public int SlotTokensNeeded => (Memory?.Layout.ContextCacheStart ?? 0) + PromptLength + MaxNewTokens - 1;

    public int TokenAt(int i) => i < _prompt.Length ? _prompt[i] : _generated[i - _prompt.Length];

    /// <summary>Samples the next token from <paramref name="logits"/> (modified in place), emits it; true when finished.</summary>
    internal bool Accept(float[] logits)
    {
        for (int v = _tokenizerVocab; v < logits.Length; v++) logits[v] = float.NegativeInfinity;
        var r = _sampler.Sample(logits, _prompt, CollectionsMarshal.AsSpan(_generated));
        if (Memory is { Windows.Count: > 0 } mem)
        {
            // The first decoded chunk inherits the last prompt chunk's memories.
            if (_generated.Count == 0) { var last = mem.Windows[^1]; mem.Windows.Add(new MemoryWindow("decode", 0, 0, last.Query, last.Citations)); }
        }
        _generated.Add(r.TokenId);
        if (Memory is { Windows.Count: > 0 } m2) m2.Windows[^1].End = _generated.Count;
        FinishReason? finish = null;
        string text;
        if (_stopIds.Contains(r.TokenId))
        {
            text = FlushAll(out _);
            finish = FinishReason.Stop;
        }
        else
        {
            var piece = _stops.Push(_detok?.Push(r.TokenId) ?? "");
            text = piece.Text;
            if (piece.Stopped) finish = FinishReason.Stop;
            else if (_generated.Count >= MaxNewTokens)
            {
                text += FlushAll(out bool stopped);
                finish = stopped ? FinishReason.Stop : FinishReason.Length;
            }
        }
        if (finish is not null) IsFinished = true;
        Observer.OnEvent(this, new TokenEvent(Index, r.TokenId, text, r.Logprob, r.TopLogprobs, finish, null, finish is not null ? Memory?.Report() : null));
        return IsFinished;
    }

    /// <summary>Ends the sequence with an error event.</summary>
    internal void Fail(string message)
    {
        if (IsFinished) return;
        IsFinished = true;
        Observer.OnEvent(this, new TokenEvent(Index, -1, "", float.NaN, null, null, message));
    }

    /// <summary>Ends the sequence silently (the client went away).</summary>
    internal void MarkAborted() => IsFinished = true;

    private string FlushAll(out bool stopped)
    {
        var tail = _detok?.Flush() ?? "";
        stopped = false;
        var text = "";
        if (tail.Length > 0)
        {
            var o = _stops.Push(tail);
            text = o.Text;
            stopped = o.Stopped;
        }
        return stopped ? text : text + _stops.Flush();
    }
}
