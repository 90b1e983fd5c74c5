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
/// The training text of issue 5, drawn from the training world only. The world's entities are split in two:
/// <i>known</i> entities are described in the warm-up text (knowledge that goes into the weights, and questions read
/// from references placed in the prompt, RAG-style); <i>memory-only</i> entities are described nowhere but in their
/// references, so a question about them can only be answered by reading memory. Every sample is a pure function of
/// (stage, step, index): a resumed run sees the same data.
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
    private readonly Dictionary<string, int> _referenceOf = new(StringComparer.Ordinal);
    private readonly int _seed;
    private readonly List<string> _words;
    private readonly List<string> _years;

    /// <summary>The world's references (one per entity) and their token ids.</summary>
    public IReadOnlyList<string> ReferenceTexts { get; }
    public IReadOnlyList<int[]> References { get; }
    public int MemoriesPerChunk { get; }
    /// <summary>Stage-2 steps at the start that read only two memories (the entity's and one other): a curriculum.</summary>
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
            _referenceOf[refs[i].Entity.Name] = i;
            _bm25.Add((ulong)i, 0, refs[i].Text);
            (i % 2 == 0 ? _known : _memoryOnly).Add(refs[i].Entity);
        }
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

    /// <summary>A fresh entity, a question about it, and its reference among <paramref name="count"/> (half the time the others are of its kind).</summary>
    private (FactQuestion Question, List<string> References) FreshQuestion(Random rng, int count)
    {
        var e = Fresh(rng);
        bool sameKind = rng.Next(2) == 0;
        var refs = new List<string> { KnowledgeWorld.Reference(e, rng) };
        for (int i = 1; i < count; i++) refs.Add(KnowledgeWorld.Reference(Fresh(rng, sameKind ? e.Kind : null), rng));
        return (KnowledgeWorld.Question(e, e.Facts[rng.Next(e.Facts.Count)], rng), refs);
    }

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

    /// <summary>The top references for a query by BM25 (the retriever's lexical half), with <paramref name="gold"/> forced in.</summary>
    public int[] Retrieve(string query, int? gold)
    {
        var hits = _bm25.Search(Bm25Index.Terms(query), MemoriesPerChunk, null).Select(h => (int)h.Key).ToList();
        if (gold is int g && !hits.Contains(g))
        {
            if (hits.Count == MemoriesPerChunk) hits.RemoveAt(hits.Count - 1);
            hits.Insert(0, g);
        }
        return hits.ToArray();
    }

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

    private string Chat(string? system, string user, string assistant) =>
        _chat.Format([.. Messages(system, user), ("assistant", assistant)], addGenerationPrompt: false);

    /// <summary>The chat prompt of a question (generation prompt added), as the server renders it.</summary>
    public string ChatPrompt(string? system, string user) => _chat.Format(Messages(system, user), addGenerationPrompt: true);

    /// <summary>The RAG system message: the references' text in the prompt.</summary>
    public static string RagSystem(IEnumerable<string> references) => RagInstruction + "\n" + string.Join("\n", references.Select(r => "Reference: " + r));

    /// <summary>Tokens of a chat exchange with the loss on the assistant's answer (and its end marker) only, or on everything.</summary>
    private TrainSample ChatSample(string? system, FactQuestion q, bool answerOnly, int? memoryGold, int? memories = null)
    {
        var prompt = Encode(ChatPrompt(system, q.Question));
        // The answer starts with a space: " Nulim" is then the very token sequence the references hold ("works for
        // Nulim."), so answering is copying. After the template's newline, "Nulim" would be other tokens.
        var full = Encode(Chat(system, q.Question, " " + q.Answer));
        var loss = new bool[full.Length];
        for (int i = 1; i < full.Length; i++) loss[i] = !answerOnly || i >= prompt.Length;
        // The newline after <|im_end|> is the template's, not the answer's: no need to learn it.
        if (answerOnly && full.Length > prompt.Length + 1) loss[^1] = false;
        if (memoryGold is not int gold) return new TrainSample(full, loss, null);
        // As served: each prompt chunk retrieves with its own text, and the answer inherits the last prompt chunk's memories.
        var refs = ChunkReferences(prompt, gold, memories);
        int chunks = (full.Length + Interval - 1) / Interval;
        var perChunk = Enumerable.Range(0, chunks).Select(c => refs[Math.Min(c, refs.Length - 1)]).ToArray();
        return new TrainSample(full, loss, perChunk);
    }

    private static bool[] AllLoss(int n) { var l = new bool[n]; for (int i = 1; i < n; i++) l[i] = true; return l; }

    /// <summary>Per-chunk references for a token sequence: each chunk retrieves with its own text.</summary>
    private int[][] ChunkReferences(int[] tokens, int? gold, int? memories = null)
    {
        int chunks = (tokens.Length + Interval - 1) / Interval;
        var result = new int[chunks][];
        for (int c = 0; c < chunks; c++)
        {
            var chunk = tokens[(c * Interval)..Math.Min(tokens.Length, (c + 1) * Interval)];
            result[c] = Retrieve(_tokenizer.Decode(chunk, skipSpecialTokens: true), gold);
            if (memories is int n && gold is int g && n < result[c].Length)
                result[c] = result[c].Where(r => r == g).Concat(result[c].Where(r => r != g)).Take(n).ToArray();
        }
        return result;
    }

    /// <summary>Stage 1, language-model warm-up without memory: copying drills (40%), passages about known entities (20%), closed-book (10%) and RAG questions (30%).</summary>
    public TrainSample WarmUp(int step, int index)
    {
        var rng = Rng(1, step, index);
        int kind = rng.Next(10);
        var e = _known[rng.Next(_known.Count)];
        var q = KnowledgeWorld.Question(e, e.Facts[rng.Next(e.Facts.Count)], rng);
        if (kind < 4) return Drill(rng, kind < 2);
        if (kind < 6)
        {
            var text = string.Join(" ", Enumerable.Range(0, rng.Next(3)).Select(_ => _known[rng.Next(_known.Count)]).Prepend(e)
                .SelectMany(x => x.Facts.Select(f => KnowledgeWorld.Statement(x, f, rng))).OrderBy(_ => rng.Next()));
            var toks = Encode(_bos + text);
            return new TrainSample(toks, AllLoss(toks.Length), null);
        }
        if (kind < 7) return ChatSample(null, q, answerOnly: false, null);
        return Rag(rng, answerOnly: false);
    }

    /// <summary>A RAG question about a known entity: its retrieved references (its own among them) in the system message.</summary>
    private TrainSample Rag(Random rng, bool answerOnly)
    {
        var (q, refs) = FreshQuestion(rng, MemoriesPerChunk);
        return ChatSample(RagSystem(refs.OrderBy(_ => rng.Next())), q, answerOnly, null);
    }

    /// <summary>A question about a fresh entity whose reference (among others) is read from memory.</summary>
    private TrainSample MemoryQuestion(Random rng, int memories, bool answerOnly)
    {
        var (q, refs) = FreshQuestion(rng, memories);
        var s = ChatSample(null, q, answerOnly, null);
        int chunks = (s.Tokens.Length + Interval - 1) / Interval;
        var all = Enumerable.Range(0, refs.Count).ToArray();
        return s with { ChunkReferences = Enumerable.Range(0, chunks).Select(_ => all).ToArray(), Inline = refs.Select(r => Encode(r)).ToList() };
    }

    /// <summary>
    /// Copying drills over the training world's made-up words, which teach the model to copy a word it has never
    /// seen in that role from earlier in the sequence (the skill every answer needs): a list said twice, or pairs
    /// followed by a lookup (<c>… Kabrokun is Givlum … So Kabrokun is Givlum.</c>).
    /// </summary>
    private TrainSample Drill(Random rng, bool repeat)
    {
        string W() => _words[rng.Next(_words.Count)];
        string text;
        if (repeat)
        {
            var list = Enumerable.Range(0, 4 + rng.Next(6)).Select(_ => W()).ToList();
            text = "List: " + string.Join(" ", list) + ". Again: " + string.Join(" ", list) + ".";
        }
        else
        {
            var pairs = Enumerable.Range(0, 3 + rng.Next(5)).Select(_ => (K: W(), V: W())).ToList();
            var (k, v) = pairs[rng.Next(pairs.Count)];
            text = "Pairs: " + string.Join(" ", pairs.Select(p => $"{p.K} is {p.V}.")) + $" So {k} is {v}.";
        }
        var toks = Encode(_bos + text);
        return new TrainSample(toks, AllLoss(toks.Length), null);
    }

    /// <summary>Stage 2, continual training with memory: questions about fresh entities read from memory (60%), passages about memory-only entities whose chunks read their retrieved references (20%), RAG questions (20%).</summary>
    public TrainSample WithMemory(int step, int index)
    {
        var rng = Rng(2, step, index);
        var e = _memoryOnly[rng.Next(_memoryOnly.Count)];
        int gold = _referenceOf[e.Name];
        int kind = rng.Next(10);
        if (kind >= 8) return Rag(rng, answerOnly: false);   // keeps reading references in the prompt
        // A curriculum: the first steps read the entity's reference and one other, then five.
        int? memories = step < FewMemoriesSteps ? 2 : null;
        if (kind < 6) return MemoryQuestion(rng, memories ?? MemoriesPerChunk, answerOnly: false);
        var text = string.Join(" ", e.Facts.Select(f => KnowledgeWorld.Statement(e, f, rng)).OrderBy(_ => rng.Next()));
        var toks = Encode(_bos + text);
        return new TrainSample(toks, AllLoss(toks.Length), ChunkReferences(toks, gold, memories));
    }

    /// <summary>Stage 3, chat fine-tuning (loss on answers): memory questions (60%) and RAG questions (25%) about fresh entities, closed-book questions about known entities (15%).</summary>
    public TrainSample Chat(int step, int index)
    {
        var rng = Rng(3, step, index);
        int kind = rng.Next(20);
        if (kind < 12) return MemoryQuestion(rng, MemoriesPerChunk, answerOnly: true);
        if (kind < 17) return Rag(rng, answerOnly: true);
        var k = _known[rng.Next(_known.Count)];
        return ChatSample(null, KnowledgeWorld.Question(k, k.Facts[rng.Next(k.Facts.Count)], rng), answerOnly: true, null);
    }
}
