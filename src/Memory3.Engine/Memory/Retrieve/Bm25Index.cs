namespace Memory3.Engine.Memory.Retrieve;

/// <summary>
/// A small in-memory BM25 (Okapi, k1 = 1.2, b = 0.75, Lucene's IDF log(1 + (N − df + 0.5)/(df + 0.5))) over
/// <see cref="LexicalTokens"/>. Documents are keyed by the retriever's integer keys and carry a namespace slot so the
/// namespace filter is applied while scoring. Not thread-safe: the retriever guards it with its lock.
/// </summary>
internal sealed class Bm25Index
{
    const double K1 = 1.2, B = 0.75;

    sealed class Doc
    {
        public required int Slot;
        public required int Length;
        public required Dictionary<string, int> Tf;
    }

    readonly Dictionary<string, Dictionary<ulong, int>> _postings = new(StringComparer.Ordinal);
    readonly Dictionary<ulong, Doc> _docs = new();
    long _totalLength;

    public int Count => _docs.Count;

    /// <summary>The indexed terms of a text: <see cref="LexicalTokens"/> without stop words.</summary>
    public static List<string> Terms(string text)
    {
        var tokens = LexicalTokens.Tokenize(text);
        tokens.RemoveAll(LexicalTokens.IsStopWord);
        return tokens;
    }

    public void Add(ulong key, int nsSlot, string text)
    {
        Remove(key);
        var tokens = Terms(text);
        var tf = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in tokens) tf[t] = tf.TryGetValue(t, out var c) ? c + 1 : 1;
        _docs[key] = new Doc { Slot = nsSlot, Length = tokens.Count, Tf = tf };
        _totalLength += tokens.Count;
        foreach (var (term, count) in tf)
        {
            if (!_postings.TryGetValue(term, out var list)) _postings[term] = list = new Dictionary<ulong, int>();
            list[key] = count;
        }
    }

    public bool Remove(ulong key)
    {
        if (!_docs.Remove(key, out var doc)) return false;
        _totalLength -= doc.Length;
        foreach (var term in doc.Tf.Keys)
            if (_postings.TryGetValue(term, out var list) && list.Remove(key) && list.Count == 0) _postings.Remove(term);
        return true;
    }

    public void Clear() { _postings.Clear(); _docs.Clear(); _totalLength = 0; }

    /// <summary>The BM25 score of one document for the query (0 when it shares no term).</summary>
    public double Score(ulong key, IReadOnlyList<string> queryTokens)
    {
        if (!_docs.TryGetValue(key, out var doc)) return 0;
        double avgdl = Math.Max(1.0, (double)_totalLength / _docs.Count);
        double score = 0;
        foreach (var t in queryTokens)
            if (doc.Tf.TryGetValue(t, out var tf))
                score += Idf(t) * tf * (K1 + 1) / (tf + K1 * (1 - B + B * doc.Length / avgdl));
        return score;
    }

    public double Idf(string term)
    {
        int n = _docs.Count;
        int df = _postings.TryGetValue(term, out var list) ? list.Count : 0;
        return Math.Log(1 + (n - df + 0.5) / (df + 0.5));
    }

    public int DocFrequency(string term) => _postings.TryGetValue(term, out var list) ? list.Count : 0;

    public bool Contains(ulong key, string term) => _docs.TryGetValue(key, out var d) && d.Tf.ContainsKey(term);

    /// <summary>The top <paramref name="count"/> documents by BM25 among those whose slot passes <paramref name="slotAllowed"/>.</summary>
    public List<(ulong Key, double Score)> Search(IReadOnlyList<string> queryTokens, int count, Func<int, bool>? slotAllowed)
    {
        var result = new List<(ulong, double)>();
        if (_docs.Count == 0 || count <= 0) return result;
        double avgdl = Math.Max(1.0, (double)_totalLength / _docs.Count);
        var acc = new Dictionary<ulong, double>();
        // Query term frequency counts: a term repeated in the query weighs more (as in Lucene's BooleanQuery of term clauses).
        var qtf = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in queryTokens) qtf[t] = qtf.TryGetValue(t, out var c) ? c + 1 : 1;
        foreach (var (term, qcount) in qtf)
        {
            if (!_postings.TryGetValue(term, out var list)) continue;
            double idf = Idf(term) * qcount;
            foreach (var (key, tf) in list)
            {
                var doc = _docs[key];
                if (slotAllowed != null && !slotAllowed(doc.Slot)) continue;
                double norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * doc.Length / avgdl));
                acc[key] = acc.TryGetValue(key, out var s) ? s + idf * norm : idf * norm;
            }
        }
        return TopN(acc, count);
    }

    internal static List<(ulong Key, double Score)> TopN(Dictionary<ulong, double> acc, int count)
    {
        // Keep a min-heap of the best `count`.
        var heap = new PriorityQueue<ulong, (double Score, ulong Key)>(Comparer<(double Score, ulong Key)>.Create(
            (a, b) => a.Score != b.Score ? a.Score.CompareTo(b.Score) : b.Key.CompareTo(a.Key)));
        foreach (var (key, score) in acc)
        {
            if (heap.Count < count) heap.Enqueue(key, (score, key));
            else if (heap.TryPeek(out _, out var min) && (score > min.Score || (score == min.Score && key < min.Key)))
            { heap.Dequeue(); heap.Enqueue(key, (score, key)); }
        }
        var list = new List<(ulong Key, double Score)>(heap.Count);
        while (heap.TryDequeue(out var k, out var p)) list.Add((k, p.Score));
        list.Reverse();
        return list;
    }
}
