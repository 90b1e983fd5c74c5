using System.Diagnostics;

namespace Memory3.Engine.Memory.Retrieve;

/// <summary>
/// Measures the retriever on synthetic references: index add rate, search latency per mode (with query vectors
/// computed beforehand, so the figures are the index's own cost), top-1 hit rate, and MiniLM embedding time on
/// the CPU (model load, one 64-token query, a batch of 32 queries, references). The index is filled with
/// <see cref="HashingEmbedder"/> vectors: embedding N references with MiniLM on 2 cores would take minutes and
/// would not change the index's speed.
/// </summary>
public static class RetrievalBench
{
    public static void Run(TextWriter output, int references) => Run(output, references, withMiniLm: true);

    public static void Run(TextWriter output, int references, bool withMiniLm, int queries = 300, int seed = 42)
    {
        references = Math.Max(10, references);
        var rng = new Random(seed);
        var corpus = Synthetic(references, rng);
        var queryTexts = new string[queries];
        var expected = new string[queries];
        for (int q = 0; q < queries; q++)
        {
            int i = rng.Next(references);
            var words = corpus[i].Text.Split(' ');
            int len = Math.Min(64, words.Length), start = rng.Next(0, words.Length - len + 1);
            queryTexts[q] = string.Join(' ', words, start, len);
            expected[q] = corpus[i].Id;
        }
        output.WriteLine($"retrieval bench: {references} synthetic references (~{corpus.Average(c => c.Text.Split(' ').Length):F0} words), {queries} queries of 64 words, {Environment.ProcessorCount} cores");

        var hashing = new HashingEmbedder(384);
        var sw = Stopwatch.StartNew();
        var vectors = hashing.Embed(corpus.Select(c => c.Text).ToArray());
        var qvectors = hashing.Embed(queryTexts);
        sw.Stop();
        var lookup = new LookupEmbedder(384, corpus.Select(c => c.Text).Concat(queryTexts).Zip(vectors.Concat(qvectors)));
        using var retriever = new HybridRetriever(lookup);
        sw.Restart();
        retriever.Add(corpus);
        sw.Stop();
        output.WriteLine($"index add (HNSW 384d f32 M=16 + BM25), vectors precomputed: {references / sw.Elapsed.TotalSeconds:F0} refs/s ({sw.Elapsed.TotalSeconds:F2} s)");

        foreach (var (mode, label) in new[] { (RetrievalMode.Dense, "dense  "), (RetrievalMode.Lexical, "lexical"), (RetrievalMode.Hybrid, "fused  ") })
        {
            var opts = new RetrievalOptions { TopK = 5, Mode = mode };
            for (int q = 0; q < Math.Min(20, queries); q++) retriever.Search(queryTexts[q], opts); // warm-up
            var times = new double[queries];
            int top1 = 0;
            for (int q = 0; q < queries; q++)
            {
                long t0 = Stopwatch.GetTimestamp();
                var hits = retriever.Search(queryTexts[q], opts);
                times[q] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (hits.Count > 0 && hits[0].Id == expected[q]) top1++;
            }
            Array.Sort(times);
            output.WriteLine($"search {label} top-5: p50 {Pct(times, 0.50):F2} ms  p99 {Pct(times, 0.99):F2} ms  (top-1 = source {100.0 * top1 / queries:F0}%)");
        }
        {
            var opts = new RetrievalOptions { TopK = 5, Namespaces = ["ns1"] };
            var times = new double[queries];
            for (int q = 0; q < queries; q++) { long t0 = Stopwatch.GetTimestamp(); retriever.Search(queryTexts[q], opts); times[q] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds; }
            Array.Sort(times);
            output.WriteLine($"search fused, one of 4 namespaces: p50 {Pct(times, 0.50):F2} ms  p99 {Pct(times, 0.99):F2} ms");
            var batch = queryTexts.Take(32).ToArray();
            long b0 = Stopwatch.GetTimestamp();
            retriever.SearchMany(batch, new RetrievalOptions { TopK = 5 });
            output.WriteLine($"SearchMany fused, 32 queries: {Stopwatch.GetElapsedTime(b0).TotalMilliseconds:F1} ms");
        }

        if (!withMiniLm) return;
        sw.Restart();
        using var minilm = new MiniLmEmbedder();
        output.WriteLine($"MiniLM load: {sw.Elapsed.TotalMilliseconds:F0} ms");
        // Real English text for the model: 64-token queries and 128-token references cut from a fixed paragraph pool.
        var english = EnglishTexts(minilm, 64, 32, rng);
        var englishRefs = EnglishTexts(minilm, 128, 32, rng);
        minilm.Embed([english[0]]);
        var single = new double[20];
        for (int i = 0; i < single.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            minilm.Embed([english[i % english.Length]]);
            single[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(single);
        output.WriteLine($"MiniLM embed 1 query ({minilm.TokenIds(english[0]).Length} tokens incl. CLS/SEP): p50 {Pct(single, 0.5):F1} ms  p99 {Pct(single, 0.99):F1} ms");
        sw.Restart();
        minilm.Embed(english);
        output.WriteLine($"MiniLM embed 32 queries in one call: {sw.Elapsed.TotalMilliseconds:F0} ms ({sw.Elapsed.TotalMilliseconds / 32:F1} ms/query)");
        sw.Restart();
        minilm.Embed(englishRefs);
        output.WriteLine($"MiniLM embed references ({minilm.TokenIds(englishRefs[0]).Length} tokens): {englishRefs.Length / sw.Elapsed.TotalSeconds:F1} refs/s");
    }

    static readonly string[] Sentences =
    [
        "The river delta has shifted several kilometres to the east over the last century.",
        "Engineers reinforced the old bridge with steel cables after the spring floods.",
        "Most of the town's income still comes from fishing and from summer tourism.",
        "The library keeps a collection of handwritten letters from the early settlers.",
        "A narrow railway connects the harbour with the mining villages in the hills.",
        "Farmers in the valley grow barley, potatoes and a little rye on terraced fields.",
        "During the winter months the pass is closed and the road is covered in snow.",
        "The cathedral was rebuilt twice, first after a fire and later after an earthquake.",
        "Local schools teach children to sail before they are ten years old.",
        "The council voted to turn the empty warehouse into a public market hall.",
        "Birdwatchers come every autumn to see the geese gather on the salt marshes.",
        "An observatory on the ridge tracks comets and measures the brightness of stars.",
    ];

    static string[] EnglishTexts(MiniLmEmbedder m, int tokens, int count, Random rng)
    {
        var result = new string[count];
        for (int i = 0; i < count; i++)
        {
            var words = new List<string>();
            while (true)
            {
                foreach (var w in Sentences[rng.Next(Sentences.Length)].Split(' '))
                {
                    words.Add(w);
                    if (m.TokenIds(string.Join(' ', words)).Length > tokens) { words.RemoveAt(words.Count - 1); goto done; }
                }
            }
            done: result[i] = string.Join(' ', words);
        }
        return result;
    }

    static double Pct(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    /// <summary>References of ~100 words: Zipf-distributed words from a made-up vocabulary, a name and a year, 4 namespaces.</summary>
    static List<(string Id, string Namespace, string Text)> Synthetic(int n, Random rng)
    {
        const string syll = "ka lo mi ne ru sa te vo di pa ge hu ri zo ma fe ni tu bo le";
        var syllables = syll.Split(' ');
        var vocab = new string[8000];
        for (int i = 0; i < vocab.Length; i++)
        {
            int len = 1 + rng.Next(3);
            vocab[i] = string.Concat(Enumerable.Range(0, len).Select(_ => syllables[rng.Next(syllables.Length)])) + (i % 7);
        }
        var cdf = new double[vocab.Length];
        double acc = 0;
        for (int i = 0; i < vocab.Length; i++) { acc += 1.0 / (i + 1); cdf[i] = acc; }
        string Word() { int i = Array.BinarySearch(cdf, rng.NextDouble() * acc); return vocab[i < 0 ? ~i : i]; }
        var list = new List<(string, string, string)>(n);
        for (int d = 0; d < n; d++)
        {
            var words = new List<string>(110);
            int count = 90 + rng.Next(20);
            for (int w = 0; w < count; w++) words.Add(Word());
            words.Insert(rng.Next(words.Count), "Name" + rng.Next(100000));
            words.Insert(rng.Next(words.Count), (1800 + rng.Next(225)).ToString());
            list.Add(($"ref{d:D7}", "ns" + (d % 4), string.Join(' ', words)));
        }
        return list;
    }

    sealed class LookupEmbedder(int dims, IEnumerable<(string Text, float[] Vector)> known) : IEmbedder
    {
        readonly Dictionary<string, float[]> _known = known.GroupBy(k => k.Text).ToDictionary(g => g.Key, g => g.First().Vector);
        readonly HashingEmbedder _fallback = new(dims);
        public int Dimensions => dims;
        public string ModelId => "bench-lookup";
        public float[][] Embed(IReadOnlyList<string> texts) =>
            texts.Select(t => _known.TryGetValue(t, out var v) ? v : _fallback.Embed([t])[0]).ToArray();
        public void Dispose() { }
    }
}
