using Memory3.Engine.Memory.Retrieve;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Training;

/// <summary>
/// One training sequence: token ids (starting with &lt;s&gt;), which next-token targets count in the loss
/// (<c>Loss[i]</c> scores the prediction of token i from tokens before it), and for a memory sample the references
/// each <c>retrieval_interval</c>-token chunk reads (indexes into <see cref="TrainingData.References"/>).
/// </summary>
/// <remarks>With <see cref="Inline"/>, the references are the sample's own (fresh entities) and the indexes point there.</remarks>
public sealed record TrainSample(int[] Tokens, bool[] Loss, int[][]? ChunkReferences, IReadOnlyList<int[]>? Inline = null);

/// <summary>
/// The training text of issue 5, drawn from the training world only. <i>Known</i> entities are described in the
/// warm-up text (knowledge that goes into the weights; closed-book questions); <i>memory-only</i> entities are described
/// nowhere but in their references, which stage 2's passages read from memory. Questions answered by reading (RAG and
/// memory) are about <i>fresh</i> entities recombined per sample, so no answer can be memorised. Every sample is a pure
/// function of (seed, stage, step, index): a resumed run sees the same data.
/// </summary>
public sealed class TrainingData
{
    /// <summary>The chat template of the trained model: ChatML, with &lt;s&gt; first.</summary>
    public const string ChatTemplateText =
        "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    public const string RagInstruction = "Use these references.";

    private readonly ITokenizer _tokenizer;
    private readonly IChatFormatter _chat;
    private readonly string _bos;
    private readonly Bm25Index _bm25 = new();
    private readonly List<Entity> _known = [], _memoryOnly = [];
    private readonly int _seed;
    private readonly List<string> _words;
    private readonly List<string> _years;

    /// <summary>The world's references (one per fact) and their token ids.</summary>
    public IReadOnlyList<string> ReferenceTexts { get; }
    public IReadOnlyList<int[]> References { get; }
    public int MemoriesPerChunk { get; }
    /// <summary>Stage-2 steps at the start that read one to five memories rather than five: a curriculum.</summary>
    public int FewMemoriesSteps { get; init; }
    public int Interval { get; }

    public TrainingData(KnowledgeWorld world, ITokenizer tokenizer, int seed, int memoriesPerChunk = 5, int interval = 64)
    {
        _tokenizer = tokenizer; _seed = seed;
        MemoriesPerChunk = memoriesPerChunk; Interval = interval;
        _chat = ChatFormatters.For(tokenizer) ?? throw new ArgumentException("the tokenizer has no chat template", nameof(tokenizer));
        _bos = tokenizer.BosTokenId is int b ? tokenizer.IdToToken(b) ?? "<s>" : "<s>";
        var refs = world.References(seed);
        ReferenceTexts = refs.Select(r => r.Text).ToList();
        References = refs.Select(r => tokenizer.Encode(r.Text, addSpecialTokens: false)).ToList();
        _words = world.Words().ToList();
        _years = world.Entities.SelectMany(e => e.Facts).Select(f => f.Value).Where(v => v.All(char.IsDigit)).Distinct().ToList();
        for (int i = 0; i < refs.Count; i++)
        {
            _bm25.Add((ulong)i, 0, refs[i].Text);
        }
        for (int i = 0; i < world.Entities.Count; i++) (i % 2 == 0 ? _known : _memoryOnly).Add(world.Entities[i]);
    }

    /// <summary>
    /// A fresh entity for one sample: a random kind, a name and values recombined from the training world's words and
    /// years. Questions about fresh entities cannot be answered from the weights — no fact repeats — so their loss
    /// falls only as the model learns to read the references it is given (in the prompt or in memory).
    /// </summary>
    private Entity Fresh(Random rng, string? kind = null)
    {
        string W() => _words[rng.Next(_words.Count)];
        string Y() => _years[rng.Next(_years.Count)];
        kind ??= Kinds[rng.Next(Kinds.Length)];
        return kind switch
        {
            "city" => new Entity(kind, W(), [new("country", W()), new("river", W()), new("founded", Y())]),
            "organisation" => new Entity(kind, W(), [new("headquarters", W()), new("product", W()), new("founded", Y())]),
            "book" => new Entity(kind, W(), [new("setting", W()), new("published", Y())]),
            "invention" => new Entity(kind, W(), [new("place", W()), new("invented", Y())]),
            _ => new Entity("person", W() + " " + W(), [new("birthplace", W()), new("employer", W()), new("born", Y())]),
        };
    }

    private static readonly string[] Kinds = ["person", "person", "city", "organisation", "book", "invention"];

    /// <summary>
    /// A set of <paramref name="count"/> one-fact references about fresh entities, in random order: every fact of one
    /// entity, then single facts of others (half the time of the same kind, so that only the name tells them apart).
    /// Returns each reference's fact and its text.
    /// </summary>
    private List<(Entity Entity, Fact Fact, string Text)> FreshSet(Random rng, int count)
    {
        var e = Fresh(rng);
        bool sameKind = rng.Next(2) == 0;
        var set = e.Facts.OrderBy(_ => rng.Next()).Take(count).Select(f => (e, f)).ToList();
        while (set.Count < count)
        {
            var o = Fresh(rng, sameKind ? e.Kind : null);
            set.Add((o, o.Facts[rng.Next(o.Facts.Count)]));
        }
        return set.OrderBy(_ => rng.Next()).Select(x => (x.Item1, x.Item2, KnowledgeWorld.Reference(x.Item1, x.Item2, rng))).ToList();
    }

    /// <summary><paramref name="turns"/> questions about distinct facts of a set in random order.</summary>
    private static List<FactQuestion> Questions(Random rng, List<(Entity Entity, Fact Fact, string Text)> set, int turns) =>
        set.OrderBy(_ => rng.Next()).Take(turns).Select(x => KnowledgeWorld.Question(x.Entity, x.Fact, rng)).ToList();

    public IReadOnlyList<Entity> Known => _known;
    public IReadOnlyList<Entity> MemoryOnly => _memoryOnly;

    /// <summary>Every text of the corpus kinds, for training the tokenizer.</summary>
    public static IEnumerable<string> TokenizerCorpus(KnowledgeWorld world, int seed)
    {
        var rng = new Random(seed);
        foreach (var (_, text) in world.References(seed)) yield return text;
        for (int i = 0; i < world.Entities.Count; i++)
        {
            yield return world.Passage(rng, 4);
            var e = world.Entities[i];
            foreach (var f in e.Facts) yield return KnowledgeWorld.Question(e, f, rng).Question;
        }
        yield return RagInstruction + " Reference: user assistant system";
    }

    /// <summary>The top references for a query by BM25 (the retriever's lexical half).</summary>
    public int[] Retrieve(string query) =>
        _bm25.Search(Bm25Index.Terms(query), MemoriesPerChunk, null).Select(h => (int)h.Key).ToArray();

    private Random Rng(int stage, int step, int index) => new(SampleSeed(_seed, stage, step, index));

    /// <summary>
    /// The seed of one sample's generator: a fixed mix (SplitMix64's finaliser) of (seed, stage, step, index).
    /// Not <see cref="HashCode.Combine{T1,T2,T3,T4}"/>, which is salted per process: a rerun or a resumed run in a new
    /// process must draw the same samples.
    /// </summary>
    internal static int SampleSeed(int seed, int stage, int step, int index)
    {
        ulong h = Mix((uint)seed);
        h = Mix(h ^ (uint)stage);
        h = Mix(h ^ (uint)step);
        h = Mix(h ^ (uint)index);
        return (int)(h & 0x7fffffff);

        static ulong Mix(ulong z)
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    private int[] Encode(string text) => _tokenizer.Encode(text, addSpecialTokens: false);

    private static List<(string, string)> Messages(string? system, string user)
    {
        var list = new List<(string, string)>();
        if (system is not null) list.Add(("system", system));
        list.Add(("user", user));
        return list;
    }

    /// <summary>The chat prompt of a question (generation prompt added), as the server renders it.</summary>
    public string ChatPrompt(string? system, string user) => _chat.Format(Messages(system, user), addGenerationPrompt: true);

    /// <summary>The RAG system message: the references' text in the prompt.</summary>
    public static string RagSystem(IEnumerable<string> references) => RagInstruction + "\n" + string.Join("\n", references.Select(r => "Reference: " + r));

    /// <summary>
    /// Tokens of a chat of one or more question–answer turns, with the loss on the answers (and their end markers)
    /// only, or on everything. Answers start with a space: " Nulim" is then the very token sequence the references
    /// hold ("works for Nulim."), so answering is copying; after the template's newline, "Nulim" would be other tokens.
    /// </summary>
    private (int[] Tokens, bool[] Loss) ChatTokens(string? system, IReadOnlyList<FactQuestion> turns, bool answerOnly)
    {
        var msgs = new List<(string, string)>();
        if (system is not null) msgs.Add(("system", system));
        var answerSpans = new List<(int Start, int End)>();
        foreach (var q in turns)
        {
            msgs.Add(("user", q.Question));
            int start = Encode(_chat.Format(msgs, addGenerationPrompt: true)).Length;
            msgs.Add(("assistant", " " + q.Answer));
            // The newline after <|im_end|> is the template's, not the answer's: no need to learn it.
            int end = Encode(_chat.Format(msgs, addGenerationPrompt: false)).Length - 1;
            answerSpans.Add((start, end));
        }
        var full = Encode(_chat.Format(msgs, addGenerationPrompt: false));
        var loss = new bool[full.Length];
        if (!answerOnly) for (int i = 1; i < full.Length; i++) loss[i] = true;
        else foreach (var (start, end) in answerSpans) for (int i = start; i < end && i < full.Length; i++) loss[i] = true;
        return (full, loss);
    }

    /// <summary>Chat turns about known entities with no references at all: knowledge from the weights.</summary>
    private TrainSample ClosedBook(Random rng, bool answerOnly)
    {
        var e = _known[rng.Next(_known.Count)];
        var (tokens, loss) = ChatTokens(null, [KnowledgeWorld.Question(e, e.Facts[rng.Next(e.Facts.Count)], rng)], answerOnly);
        return new TrainSample(tokens, loss, null);
    }

    private static bool[] AllLoss(int n) { var l = new bool[n]; for (int i = 1; i < n; i++) l[i] = true; return l; }

    /// <summary>Per-chunk references for a token sequence: each chunk retrieves with its own text, as served.</summary>
    private int[][] ChunkReferences(int[] tokens)
    {
        int chunks = (tokens.Length + Interval - 1) / Interval;
        var result = new int[chunks][];
        for (int c = 0; c < chunks; c++)
            result[c] = Retrieve(_tokenizer.Decode(tokens[(c * Interval)..Math.Min(tokens.Length, (c + 1) * Interval)], skipSpecialTokens: true));
        return result;
    }

    /// <summary>
    /// Stage 1a, the first part of the warm-up: copying drills with the loss on what can be copied (95%), and passages
    /// about known entities (5%). This is where the induction circuit forms — the skill every answer needs and the
    /// one the mixed warm-up alone did not teach in 1,000 steps (docs/training.md). On its own it forms in about 700
    /// steps of 32 drills.
    /// </summary>
    public TrainSample Copy(int step, int index)
    {
        var rng = Rng(4, step, index);
        int kind = rng.Next(20);
        return kind < 19 ? Drill(rng, repeat: kind < 12, copyOnly: true) : Passage(rng, _known);
    }

    /// <summary>
    /// Stage 1b, language-model warm-up without memory: RAG chats about fresh entities (60%: the references in the
    /// system message, one to four questions), copying drills (20%), passages about known entities (15%) and
    /// closed-book questions (5%).
    /// </summary>
    public TrainSample WarmUp(int step, int index)
    {
        var rng = Rng(1, step, index);
        int kind = rng.Next(20);
        if (kind < 12) return Rag(rng, turns: 1 + rng.Next(4), answerOnly: false, references: 1 + rng.Next(MemoriesPerChunk));
        if (kind < 16) return Drill(rng, kind < 14);
        if (kind < 19) return Passage(rng, _known);
        return ClosedBook(rng, answerOnly: false);
    }

    /// <summary>A passage about a few entities of <paramref name="pool"/>: their facts, reworded and interleaved.</summary>
    private TrainSample Passage(Random rng, IReadOnlyList<Entity> pool)
    {
        var text = string.Join(" ", Enumerable.Range(0, 1 + rng.Next(3)).Select(_ => pool[rng.Next(pool.Count)])
            .SelectMany(x => x.Facts.Select(f => KnowledgeWorld.Statement(x, f, rng))).OrderBy(_ => rng.Next()));
        var toks = Encode(_bos + text);
        return new TrainSample(toks, AllLoss(toks.Length), null);
    }

    /// <summary>A RAG chat: a set of fresh references in the system message and questions about them.</summary>
    private TrainSample Rag(Random rng, int turns, bool answerOnly, int? references = null)
    {
        var set = FreshSet(rng, references ?? MemoriesPerChunk);
        var (tokens, loss) = ChatTokens(RagSystem(set.Select(x => x.Text)), Questions(rng, set, turns), answerOnly);
        return new TrainSample(tokens, loss, null);
    }

    /// <summary>A chat whose every chunk reads a set of fresh references from memory, with questions about them.</summary>
    private TrainSample MemoryChat(Random rng, int memories, int turns, bool answerOnly)
    {
        var set = FreshSet(rng, memories);
        var (tokens, loss) = ChatTokens(null, Questions(rng, set, turns), answerOnly);
        int chunks = (tokens.Length + Interval - 1) / Interval;
        var all = Enumerable.Range(0, set.Count).ToArray();
        return new TrainSample(tokens, loss, Enumerable.Range(0, chunks).Select(_ => all).ToArray(), set.Select(x => Encode(x.Text)).ToList());
    }

    /// <summary>
    /// Copying drills over the training world's made-up words, which teach the model to copy a word it has never
    /// seen in that role from earlier in the sequence (the skill every answer needs): a list said twice, or pairs
    /// followed by a lookup (<c>… Kabrokun is Givlum … So Kabrokun is Givlum.</c>).
    /// </summary>
    private TrainSample Drill(Random rng, bool repeat, bool copyOnly = false)
    {
        string W() => _words[rng.Next(_words.Count)];
        string text;
        if (repeat)
        {
            var list = Enumerable.Range(0, 3 + rng.Next(6)).Select(_ => W()).ToList();
            text = "List: " + string.Join(" ", list) + ". Again: " + string.Join(" ", list) + ".";
        }
        else
        {
            var pairs = Enumerable.Range(0, 2 + rng.Next(5)).Select(_ => (K: W(), V: W())).ToList();
            text = "Pairs: " + string.Join(" ", pairs.Select(p => $"{p.K} is {p.V}.")) + " So " +
                string.Join(" ", pairs.OrderBy(_ => rng.Next()).Take(1 + rng.Next(3)).Select(p => $"{p.K} is {p.V}."));
        }
        var toks = Encode(_bos + text);
        var loss = AllLoss(toks.Length);
        if (copyOnly)
        {
            // Only what can be copied counts: the repeated list, or the pairs recalled after "So".
            int from = Encode(_bos + text[..(text.LastIndexOf(repeat ? "Again:" : " So ", StringComparison.Ordinal) + (repeat ? 6 : 3))]).Length;
            for (int i = 0; i < from; i++) loss[i] = false;
        }
        return new TrainSample(toks, loss, null);
    }

    /// <summary>
    /// Stage 2, continual training with memory: chats about fresh entities whose references are read from memory
    /// (80%, one to four questions), passages about memory-only entities whose chunks read the references retrieved
    /// for them (10%), RAG chats (10%).
    /// </summary>
    public TrainSample WithMemory(int step, int index)
    {
        var rng = Rng(2, step, index);
        int kind = rng.Next(10);
        if (kind == 9) return Rag(rng, turns: 1 + rng.Next(4), answerOnly: false);   // keeps reading references in the prompt
        if (kind == 8)
        {
            var p = Passage(rng, _memoryOnly);
            return p with { ChunkReferences = ChunkReferences(p.Tokens) };
        }
        // A curriculum: the first steps read one to five memories (one: reading is all there is to learn), then
        // three chats in four read five, as served.
        int memories = step < FewMemoriesSteps || rng.Next(4) == 0 ? 1 + rng.Next(MemoriesPerChunk) : MemoriesPerChunk;
        return MemoryChat(rng, memories, turns: 1 + rng.Next(4), answerOnly: false);
    }

    /// <summary>Stage 3, chat fine-tuning (loss on answers), one question as served: memory (60%), RAG (25%), closed-book about known entities (15%).</summary>
    public TrainSample Chat(int step, int index)
    {
        var rng = Rng(3, step, index);
        int kind = rng.Next(20);
        if (kind < 12) return MemoryChat(rng, MemoriesPerChunk, turns: 1, answerOnly: true);
        if (kind < 17) return Rag(rng, turns: 1, answerOnly: true);
        return ClosedBook(rng, answerOnly: true);
    }

    /// <summary>
    /// Probes for watching training: a list to copy (loss on the copy), or a single question about fresh entities, as
    /// served, read from memory or from the prompt (RAG), loss on the answer. Drawn from their own random streams.
    /// </summary>
    /// <param name="kind">"copy" (a list said again), "rag" or "memory".</param>
    public IReadOnlyList<TrainSample> Probes(int count, string kind)
    {
        var list = new List<TrainSample>(count);
        for (int i = 0; i < count; i++)
        {
            var rng = Rng(kind == "memory" ? 9 : kind == "rag" ? 8 : 7, 0, i);
            list.Add(kind switch
            {
                "memory" => MemoryChat(rng, MemoriesPerChunk, 1, answerOnly: true),
                "rag" => Rag(rng, 1, answerOnly: true),
                "copy" => Drill(rng, repeat: true, copyOnly: true),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "copy, rag or memory"),
            });
        }
        return list;
    }
}
