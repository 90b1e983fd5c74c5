using System.Diagnostics;
using System.Text.Json;
using Memory3.Engine.Inference;
using Memory3.Engine.Memory;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;
using static TorchSharp.torch;
using Generator = Memory3.Engine.Inference.Generator;

namespace Memory3.Engine.Training;

/// <summary>One evaluation setting's score.</summary>
public sealed record FactsSetting(string Name, int Correct, int Total)
{
    public double ExactMatch => Total == 0 ? 0 : (double)Correct / Total;
}

/// <summary>Time to first token and decode speed, memory against RAG, on the same questions.</summary>
public sealed record FactsTiming(string Name, int Questions, double TtftP50Ms, double TtftMeanMs, double RetrievalP50Ms, double AfterRetrievalP50Ms,
    double DecodeTokensPerSecond, double PromptTokensMean);

/// <summary>Times the retrievals (search and fetch) a generator makes, so time to first token can be split.</summary>
internal sealed class TimedSource(IMemorySource inner) : IMemorySource
{
    public double LastMs;
    public async ValueTask<RetrievedMemories> RetrieveAsync(MemoryQuery query, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        var r = await inner.RetrieveAsync(query, ct);
        LastMs += sw.Elapsed.TotalMilliseconds;
        return r;
    }
}

public sealed record FactsReport(IReadOnlyList<FactsSetting> Settings, IReadOnlyList<FactsTiming> Timing, IReadOnlyList<FactsSample> Samples)
{
    /// <summary>Mean log-probability of the right answer (" " + value) per setting.</summary>
    public IReadOnlyDictionary<string, double> AnswerLogProb { get; init; } = new Dictionary<string, double>();
}

public sealed record FactsSample(string Question, string Expected, IReadOnlyDictionary<string, string> Answers);

/// <summary>
/// <c>memory3 eval facts</c> (issue 5): questions about the held-out world, scored by exact match on the attribute
/// value, in five settings — memory from a bf16 bank, memory from a quantized bank, no memory, RAG (the same
/// retrieved references' text in the prompt), and memory without token sparsification. The first four run through
/// the serving path (<see cref="Generator"/> over a <see cref="MemoryBank"/>); the ablation needs per-memory token
/// counts the serving layout does not have, so it runs through the training forward, whose equality with the
/// engine's is tested — and so does a control row, sparse memory through that same forward.
/// </summary>
public sealed class FactsEval(CausalLM model, ITokenizer tokenizer)
{
    private readonly IChatFormatter _chat = ChatFormatters.For(tokenizer) ?? throw new ArgumentException("the model's tokenizer has no chat template");
    public int MaxTokens { get; init; } = 12;
    public int TimingQuestions { get; init; } = 50;
    public int TimingTokens { get; init; } = 32;

    public static List<FactQuestion> LoadQuestions(string path, int limit)
    {
        var list = new List<FactQuestion>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            list.Add(new FactQuestion(r.GetProperty("question").GetString()!, r.GetProperty("answer").GetString()!,
                r.TryGetProperty("entity", out var e) ? e.GetString() ?? "" : "", r.TryGetProperty("attribute", out var a) ? a.GetString() ?? "" : ""));
            if (list.Count == limit) break;
        }
        return list;
    }

    /// <summary>Exact match: the answer, trimmed of surrounding space and a final full stop, equals the value (case-insensitive).</summary>
    public static bool Matches(string answer, string expected)
    {
        var a = answer.Trim().TrimEnd('.').Trim();
        return string.Equals(a, expected.Trim(), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A question as the server renders it for chat (the model's template, generation prompt added), as token ids.</summary>
    public int[] ChatPrompt(string? system, string user)
    {
        var msgs = new List<(string, string)>();
        if (system is not null) msgs.Add(("system", system));
        msgs.Add(("user", user));
        return tokenizer.Encode(_chat.Format(msgs, addGenerationPrompt: true), addSpecialTokens: false);
    }

    private (string Text, double TtftMs, double DecodeTps, int Tokens) Run(Generator g, int[] prompt, SamplingParams p, double extraMs = 0)
    {
        var sw = Stopwatch.StartNew();
        var text = new System.Text.StringBuilder();
        double first = -1, last = 0;
        int n = 0;
        foreach (var ev in g.Generate(prompt, p))
        {
            if (n == 0) first = sw.Elapsed.TotalMilliseconds;
            last = sw.Elapsed.TotalMilliseconds;
            n++;
            text.Append(ev.Text);
        }
        double tps = n > 1 ? (n - 1) / Math.Max(1e-9, (last - first) / 1000) : 0;
        return (text.ToString(), first + extraMs, tps, n);
    }

    /// <summary>The retrieval query the serving path uses for a one-chunk prompt: the chunk's text without special tokens.</summary>
    private string QueryOf(int[] prompt) => tokenizer.Decode(prompt, skipSpecialTokens: true);

    public FactsReport Run(IReadOnlyList<FactQuestion> questions, MemoryBank bf16, MemoryBank quantized, TrainingModel? trainingForward, IProgress<string>? progress = null)
    {
        var greedy = SamplingParams.Greedy with { MaxTokens = MaxTokens };
        var mem = model.Config.Memory ?? throw new InvalidOperationException("the model reads no memory");
        var withBf16 = new Generator(model, tokenizer) { Memory = new MemoryReadOptions(bf16) };
        var withQuant = new Generator(model, tokenizer) { Memory = new MemoryReadOptions(quantized) };
        var plain = new Generator(model, tokenizer);
        var names = new[] { "memory (bf16)", "memory (quantized)", "no memory", "RAG (references in the prompt)", "memory, no sparsification (training forward)", "memory, sparse (training forward; control)" };
        var correct = new int[names.Length];
        double lpMemory = 0, lpNone = 0, lpRag = 0;
        var samples = new List<FactsSample>();
        int total = 0;
        foreach (var q in questions)
        {
            var prompt = ChatPrompt(null, q.Question);
            var hits = bf16.Search(QueryOf(prompt), null, mem.MemoriesPerChunk);
            var ragPrompt = ChatPrompt(TrainingData.RagSystem(hits.Select(h => h.Text)), q.Question);
            var answerIds = tokenizer.Encode(" " + q.Answer, addSpecialTokens: false);
            lpMemory += AnswerLogProb(prompt, answerIds, bf16);
            lpNone += AnswerLogProb(prompt, answerIds, null);
            lpRag += AnswerLogProb(ragPrompt, answerIds, null);
            var answers = new string[names.Length];
            answers[0] = Run(withBf16, prompt, greedy).Text;
            answers[1] = Run(withQuant, prompt, greedy).Text;
            answers[2] = Run(plain, prompt, greedy).Text;
            answers[3] = Run(plain, ragPrompt, greedy).Text;
            if (trainingForward is not null)
            {
                var refs = hits.Select(h => tokenizer.Encode(h.Text, addSpecialTokens: false)).ToList();
                answers[4] = GreedyWithMemory(trainingForward, prompt, refs, sparse: false);
                answers[5] = GreedyWithMemory(trainingForward, prompt, refs, sparse: true);
            }
            for (int i = 0; i < names.Length; i++) if (answers[i] is not null && Matches(answers[i], q.Answer)) correct[i]++;
            total++;
            if (samples.Count < 20)
                samples.Add(new FactsSample(q.Question, q.Answer, names.Select((n, i) => (n, answers[i] ?? "")).ToDictionary(x => x.n, x => x.Item2)));
            if (total % 10 == 0) progress?.Report($"{total}/{questions.Count}: memory {correct[0]}, no memory {correct[2]}, RAG {correct[3]}");
        }
        var settings = names.Select((n, i) => new FactsSetting(n, trainingForward is null && i >= 4 ? 0 : correct[i], trainingForward is null && i >= 4 ? 0 : total))
            .Where(s => s.Total > 0).ToList();

        // Timing: the same questions, a fixed number of tokens each, after a warm-up; RAG's time includes its retrieval.
        var timed = questions.Take(TimingQuestions).ToList();
        var fixedLen = SamplingParams.Greedy with { MaxTokens = TimingTokens, IgnoreEos = true };
        foreach (var q in timed.Take(3)) { Run(withBf16, ChatPrompt(null, q.Question), fixedLen); Run(plain, ChatPrompt(null, q.Question), fixedLen); }
        var memT = new List<(double, double, double, int)>();
        var ragT = new List<(double, double, double, int)>();
        var timedSource = new TimedSource(bf16);
        var timedMemory = new Generator(model, tokenizer) { Memory = new MemoryReadOptions(timedSource) };
        foreach (var q in timed)
        {
            var prompt = ChatPrompt(null, q.Question);
            timedSource.LastMs = 0;
            var r = Run(timedMemory, prompt, fixedLen);
            memT.Add((r.TtftMs, timedSource.LastMs, r.DecodeTps, prompt.Length));
            var sw = Stopwatch.StartNew();
            var hits = bf16.Search(QueryOf(prompt), null, mem.MemoriesPerChunk);
            var ragPrompt = ChatPrompt(TrainingData.RagSystem(hits.Select(h => h.Text)), q.Question);
            double retrieveMs = sw.Elapsed.TotalMilliseconds;
            var rr = Run(plain, ragPrompt, fixedLen, retrieveMs);
            ragT.Add((rr.TtftMs, retrieveMs, rr.DecodeTps, ragPrompt.Length));
        }
        static double P50(IEnumerable<double> xs) { var l = xs.OrderBy(x => x).ToList(); return l.Count == 0 ? 0 : l[l.Count / 2]; }
        static FactsTiming Summ(string name, List<(double Ttft, double Retrieval, double Tps, int Prompt)> xs) => xs.Count == 0
            ? new FactsTiming(name, 0, 0, 0, 0, 0, 0, 0)
            : new FactsTiming(name, xs.Count, P50(xs.Select(x => x.Ttft)), xs.Average(x => x.Ttft), P50(xs.Select(x => x.Retrieval)),
                P50(xs.Select(x => x.Ttft - x.Retrieval)), xs.Average(x => x.Tps), xs.Average(x => x.Prompt));
        int nq = Math.Max(1, total);
        return new FactsReport(settings, [Summ("memory (bf16)", memT), Summ("RAG", ragT)], samples)
        {
            AnswerLogProb = new Dictionary<string, double> { ["memory (bf16)"] = lpMemory / nq, ["no memory"] = lpNone / nq, ["RAG"] = lpRag / nq },
        };
    }

    /// <summary>
    /// The log-probability of <paramref name="answer"/> after <paramref name="prompt"/> through the serving path, with
    /// the memories <paramref name="memory"/> retrieves for the prompt (one chunk), or none. A graded measure beside
    /// exact match: how much reading memory raises the right answer's likelihood.
    /// </summary>
    public double AnswerLogProb(int[] prompt, int[] answer, IMemorySource? memory)
    {
        var layout = SequenceLayout.For(model, tokenizer, memory is null ? null : new MemoryReadOptions(memory));
        if (layout.HasMemory && prompt.Length > layout.Interval) throw new ArgumentException("the prompt must fit one retrieval chunk", nameof(prompt));
        var tokens = prompt.Concat(answer).ToArray();
        using var pool = model.CreatePool(1, layout.ContextCacheStart + tokens.Length + 1);
        int slot = pool.Allocate();
        int valid = 0;
        if (layout.HasMemory)
        {
            model.Forward(layout.PrefixBatch(slot), pool);
            var got = memory!.RetrieveAsync(new MemoryQuery(QueryOf(prompt), null, layout.MemoriesPerChunk)).AsTask().GetAwaiter().GetResult();
            valid = layout.Write(model, pool, slot, got);
        }
        var logits = model.Forward(new StepBatch
        {
            TokenIds = tokens,
            Positions = Enumerable.Range(layout.ContextPosition, tokens.Length).ToArray(),
            Sequences = [new SequenceSlice(slot, 0, tokens.Length, layout.ContextCacheStart, AllLogits: true,
                MemoryStart: layout.MemoryStart, MemoryLength: layout.MemoryLength, MemoryValid: valid)],
        }, pool)[0];
        int V = model.Config.VocabSize;
        double total = 0;
        for (int i = 0; i < answer.Length; i++)
        {
            var row = logits.AsSpan((prompt.Length - 1 + i) * V, V);
            float max = SamplingMath.MaxArg(row, out _);
            total += row[answer[i]] - max - Math.Log(SamplingMath.ExpSum(row, max, 1f, 0f, default));
        }
        return total;
    }

    /// <summary>Greedy decoding through the training forward with the references written fresh (sparse or every token kept).</summary>
    private string GreedyWithMemory(TrainingModel tm, int[] prompt, IReadOnlyList<int[]> refs, bool sparse)
    {
        using var noGrad = no_grad();
        var mem = tm.Config.Memory!;
        var prefix = tokenizer.Encode(mem.ReferencePrefix, addSpecialTokens: false);
        var stops = new HashSet<int>(tokenizer.EosTokenIds.Concat(tm.Config.EosTokenIds));
        var generated = new List<int>();
        using var scope = NewDisposeScope();
        MemoryInputs? inputs = null;
        int P = prefix.Length;
        for (int step = 0; step < MaxTokens; step++)
        {
            var context = prompt.Concat(generated).ToArray();
            int S = P + context.Length;
            if (refs.Count > 0)
            {
                inputs?.Dispose();
                inputs = tm.MemoryInputsFor(refs, prefix, sparse, S, P, context.Length);
            }
            var ids = tensor(prefix.Concat(context).Select(t => (long)t).ToArray(), [1, S], ScalarType.Int64);
            int ctxPos = P + mem.ReferenceMaxTokens;
            var positions = Enumerable.Range(0, S).Select(i => i < P ? i : ctxPos + i - P).ToArray();
            var logits = tm.Forward(ids, positions, inputs);
            var last = logits[0, S - 1];
            if (last.shape[0] > tokenizer.VocabSize) last = last.narrow(0, 0, tokenizer.VocabSize);
            int next = (int)last.argmax().item<long>();
            if (stops.Contains(next)) break;
            generated.Add(next);
        }
        inputs?.Dispose();
        return tokenizer.Decode(generated.ToArray(), skipSpecialTokens: true);
    }
}
