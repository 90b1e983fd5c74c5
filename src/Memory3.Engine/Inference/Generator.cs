using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Encode;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Inference;

public enum FinishReason { Stop, Length }

/// <summary>One generated token: its id, the text it completes (possibly empty while a character or a possible
/// stop string is held back), its logprob, and on the last event the finish reason.</summary>
public sealed record GenerationEvent(int TokenId, string Text, float Logprob, TokenLogprob[]? TopLogprobs, FinishReason? Finish);

/// <summary>The references attached to one window of the sequence: a prompt chunk, or a span of generated tokens.</summary>
/// <param name="Phase">"prompt" or "decode".</param>
/// <param name="Start">First token of the window (prompt token index, or generated token index).</param>
/// <param name="End">One past its last token; for the open decode window, the tokens generated so far.</param>
public sealed record MemoryWindow(string Phase, int Start, int End, string Query, IReadOnlyList<MemoryCitation> Citations)
{
    public int End { get; set; } = End;
}

/// <summary>How a generation reads explicit memory.</summary>
public sealed record MemoryReadOptions(IMemorySource Source, IReadOnlyCollection<string>? Namespaces = null, int? MemoriesPerChunk = null, int? RetrievalInterval = null);

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

    /// <summary>Explicit memory for this generator's sequences (null: memory off, the plain layout).</summary>
    public MemoryReadOptions? Memory { get; init; }

    /// <summary>The windows of the last generation, in order, with their citations.</summary>
    public List<MemoryWindow> Windows { get; } = [];

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

        var layout = SequenceLayout.For(_model, _tokenizer, Memory);
        if (layout.ContextPosition + prompt.Length >= context)
            throw new ArgumentException($"the prompt has {prompt.Length} tokens; with the memory prefix the model's context is {context - layout.ContextPosition}", nameof(prompt));
        maxNew = Math.Min(maxNew, context - layout.ContextPosition - prompt.Length);
        using var pool = _model.CreatePool(1, layout.ContextCacheStart + prompt.Length + maxNew);
        int slot = pool.Allocate();
        Windows.Clear();
        var sampler = new Sampler(p, vocab);
        var detok = new StreamingDetokenizer(_tokenizer);
        var stops = new StopChecker(p.Stop);
        var stopIds = new HashSet<int>(p.StopTokenIds);
        if (!p.IgnoreEos) foreach (var e in _tokenizer.EosTokenIds) stopIds.Add(e);
        if (!p.IgnoreEos) foreach (var e in _model.Config.EosTokenIds) stopIds.Add(e);
        int tokenizerVocab = _tokenizer.VocabSize;
        var generated = new List<int>(maxNew);

        float[] logits = [];
        int memoryValid = 0;
        if (layout.HasMemory)
        {
            // The prefix is the attention sink at positions 0..P-1, then one chunk per retrieval interval, each with its own memories.
            _model.Forward(layout.PrefixBatch(slot), pool);
            foreach (var (start, n) in MemorySchedule.PromptChunks(prompt.Length, layout.Interval))
            {
                var chunk = prompt[start..(start + n)];
                memoryValid = Attach(pool, slot, layout, _tokenizer.Decode(chunk, skipSpecialTokens: true), "prompt", start, start + n);
                logits = _model.Forward(layout.Batch(slot, start, chunk, memoryValid), pool)[0];
            }
            // The first decoded chunk inherits the last prompt chunk's memories.
            var last = Windows[^1];
            Windows.Add(new MemoryWindow("decode", 0, 0, last.Query, last.Citations));
        }
        else
        {
            for (int done = 0; done < prompt.Length; done += PrefillChunk)
            {
                int n = Math.Min(PrefillChunk, prompt.Length - done);
                logits = _model.Forward(StepBatch.Contiguous([(slot, done, prompt[done..(done + n)])]), pool)[0];
            }
        }

        for (int i = 0; i < maxNew; i++)
        {
            // Rows past the tokenizer's vocabulary (padded embeddings) can never be emitted.
            for (int v = tokenizerVocab; v < logits.Length; v++) logits[v] = float.NegativeInfinity;
            var r = sampler.Sample(logits, prompt, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(generated));
            generated.Add(r.TokenId);
            if (layout.HasMemory) Windows[^1].End = generated.Count;
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
            if (layout.HasMemory)
            {
                // Generated token i is the next forward's input: refresh first when it opens a new decode chunk.
                if (MemorySchedule.RefreshBeforeDecode(i, layout.Interval, out int queryStart))
                {
                    Windows[^1].End = i;
                    var queryIds = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(generated).Slice(queryStart, i - queryStart);
                    memoryValid = Attach(pool, slot, layout, _tokenizer.Decode(queryIds, skipSpecialTokens: true), "decode", i, i);
                }
                logits = _model.Forward(layout.Batch(slot, prompt.Length + i, [r.TokenId], memoryValid), pool)[0];
            }
            else logits = _model.Forward(StepBatch.Contiguous([(slot, prompt.Length + i, [r.TokenId])]), pool)[0];
        }
        if (maxNew == 0) yield return new GenerationEvent(-1, "", 0, null, FinishReason.Length);
    }

    /// <summary>Retrieves for a window and writes its memories into the slot's memory region; returns the filled count.</summary>
    private int Attach(KvCachePool pool, int slot, SequenceLayout layout, string query, string phase, int start, int end)
    {
        var got = Memory!.Source.RetrieveAsync(new MemoryQuery(query, Memory.Namespaces, layout.MemoriesPerChunk)).AsTask().GetAwaiter().GetResult();
        Windows.Add(new MemoryWindow(phase, start, end, query, got.Citations.Take(layout.MemoriesPerChunk).ToList()));
        return layout.Write(_model, pool, slot, got);
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

/// <summary>
/// Where a sequence's tokens go in its KV slot (DESIGN §4). Without memory: context from cache index 0, position 0.
/// With memory: [prefix at 0..P-1 | memory slots P..P+M-1 | context at cache P+M.., positions P+R..].
/// </summary>
internal sealed class SequenceLayout
{
    public bool HasMemory { get; private init; }
    public int[] Prefix { get; private init; } = [];
    public int MemoryStart { get; private init; }
    public int MemoryLength { get; private init; }
    public int MemoriesPerChunk { get; private init; }
    public int TokensPerHead { get; private init; }
    public int Interval { get; private init; }
    public int ContextCacheStart { get; private init; }
    public int ContextPosition { get; private init; }

    public static SequenceLayout For(CausalLM model, ITokenizer tokenizer, MemoryReadOptions? options)
    {
        if (options is null || model.Config.Memory is not { } m) return new SequenceLayout();
        var prefix = tokenizer.Encode(m.ReferencePrefix, addSpecialTokens: false);
        int perChunk = options.MemoriesPerChunk ?? m.MemoriesPerChunk;
        int memLen = perChunk * m.MemoryTokensPerHead;
        return new SequenceLayout
        {
            HasMemory = true, Prefix = prefix, MemoryStart = prefix.Length, MemoryLength = memLen, MemoriesPerChunk = perChunk,
            TokensPerHead = m.MemoryTokensPerHead, Interval = options.RetrievalInterval ?? m.RetrievalInterval,
            ContextCacheStart = prefix.Length + memLen, ContextPosition = prefix.Length + m.ReferenceMaxTokens,
        };
    }

    /// <summary>The reference prefix at cache indices and positions 0..P-1: the attention sink.</summary>
    public StepBatch PrefixBatch(int slot) => new()
    {
        TokenIds = Prefix,
        Positions = Enumerable.Range(0, Prefix.Length).ToArray(),
        Sequences = [new SequenceSlice(slot, 0, Prefix.Length, 0)],
    };

    /// <summary>Writes up to <see cref="MemoriesPerChunk"/> retrieved memories into the slot; returns the filled slot count (MemoryValid).</summary>
    public int Write(CausalLM model, KvCachePool pool, int slot, RetrievedMemories got)
    {
        var mems = got.Memories.Take(MemoriesPerChunk).Select(m => (m.Keys, m.Values)).ToList();
        if (mems.Count > 0) model.WriteMemories(pool, slot, MemoryStart, mems);
        return mems.Count * TokensPerHead;
    }

    /// <summary>Context tokens starting at context index <paramref name="index"/>.</summary>
    public StepBatch Batch(int slot, int index, int[] tokens, int memoryValid) => new()
    {
        TokenIds = tokens,
        Positions = Enumerable.Range(ContextPosition + index, tokens.Length).ToArray(),
        Sequences = [new SequenceSlice(slot, 0, tokens.Length, ContextCacheStart + index, MemoryStart: MemoryStart, MemoryLength: MemoryLength, MemoryValid: memoryValid)],
    };
}
