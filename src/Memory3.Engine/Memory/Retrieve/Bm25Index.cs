namespace Memory3.Engine.Memory.Retrieve;

/// <summary>
/// A small in-memory BM25 (Okapi, k1 = 1.2, b = 0.75, Lucene's IDF log(1 + (N − df + 0.5)/(df + 0.5))) over
/// <see cref="Terms"/>. Documents are keyed by the retriever's integer keys and carry a namespace slot so the
/// namespace filter is applied while scoring. Postings are flat arrays over dense document numbers (reused after
/// removal), scored term-at-a-time into a dense accumulator. Not thread-safe for writes: the retriever guards it
/// with its lock (searches may run concurrently with each other).
/// </summary>
internal sealed class Bm25Index
{
    const double K1 = 1.2, B = 0.75;

    sealed class Postings
    {
        public int[] Docs = new int[2];
        public int[] Tfs = new int[2];
        public int Count;
        public void Add(int doc, int tf)
        {
            if (Count == Docs.Length) { Array.Resize(ref Docs, Count * 2); Array.Resize(ref Tfs, Count * 2); }
            Docs[Count] = doc; Tfs[Count] = tf; Count++;
        }
        public void Remove(int doc)
        {
            for (int i = 0; i < Count; i++)
                if (Docs[i] == doc) { Count--; Docs[i] = Docs[Count]; Tfs[i] = Tfs[Count]; return; }
        }
    }

    readonly Dictionary<string, Postings> _postings = new(StringComparer.Ordinal);
    readonly Dictionary<ulong, int> _docOf = new();
    readonly Stack<int> _free = new();
    ulong[] _key = new ulong[16];
    int[] _len = new int[16];
    int[] _slot = new int[16];
    Dictionary<string, int>?[] _tf = new Dictionary<string, int>?[16];
    int _docCount; // high-water mark of document numbers
    long _totalLength;

    public int Count => _docOf.Count;

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
        int doc;
        if (_free.Count > 0) doc = _free.Pop();
        else
        {
            doc = _docCount++;
            if (doc == _key.Length)
            {
                int n = doc * 2;
                Array.Resize(ref _key, n); Array.Resize(ref _len, n); Array.Resize(ref _slot, n); Array.Resize(ref _tf, n);
            }
        }
        _key[doc] = key; _len[doc] = tokens.Count; _slot[doc] = nsSlot; _tf[doc] = tf;
        _docOf[key] = doc;
        _totalLength += tokens.Count;
        foreach (var (term, count) in tf)
        {
            if (!_postings.TryGetValue(term, out var p)) _postings[term] = p = new Postings();
            p.Add(doc, count);
        }
    }

    public bool Remove(ulong key)
    {
        if (!_docOf.Remove(key, out var doc)) return false;
        _totalLength -= _len[doc];
        foreach (var term in _tf[doc]!.Keys)
            if (_postings.TryGetValue(term, out var p)) { p.Remove(doc); if (p.Count == 0) _postings.Remove(term); }
        _tf[doc] = null;
        _free.Push(doc);
        return true;
    }

    public void Clear()
    {
        _postings.Clear(); _docOf.Clear(); _free.Clear();
        Array.Clear(_tf);
        _docCount = 0; _totalLength = 0;
    }

    public double Idf(string term) => IdfOf(DocFrequency(term));

    double IdfOf(int df) => Math.Log(1 + (_docOf.Count - df + 0.5) / (df + 0.5));

    public int DocFrequency(string term) => _postings.TryGetValue(term, out var p) ? p.Count : 0;

    public bool Contains(ulong key, string term) => _docOf.TryGetValue(key, out var d) && _tf[d]!.ContainsKey(term);

    double AvgDl => Math.Max(1.0, (double)_totalLength / Math.Max(1, _docOf.Count));

    /// <summary>The BM25 score of one document for the query (0 when it shares no term).</summary>
    public double Score(ulong key, IReadOnlyList<string> queryTokens)
    {
        if (!_docOf.TryGetValue(key, out var doc)) return 0;
        double norm = K1 * (1 - B + B * _len[doc] / AvgDl);
        double score = 0;
        var tfs = _tf[doc]!;
        foreach (var t in queryTokens)
            if (tfs.TryGetValue(t, out var tf)) score += Idf(t) * tf * (K1 + 1) / (tf + norm);
        return score;
    }

    /// <summary>The top <paramref name="count"/> documents by BM25 among those whose slot passes <paramref name="slotAllowed"/>.</summary>
    public List<(ulong Key, double Score)> Search(IReadOnlyList<string> queryTokens, int count, Func<int, bool>? slotAllowed)
    {
        if (_docOf.Count == 0 || count <= 0) return new();
        double avgdl = AvgDl;
        var acc = new double[_docCount];
        var touched = new List<int>();
        // Query term counts: a term repeated in the query weighs more (as in Lucene's BooleanQuery of term clauses).
        var qtf = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in queryTokens) qtf[t] = qtf.TryGetValue(t, out var c) ? c + 1 : 1;
        bool[]? allowed = null;
        if (slotAllowed != null)
        {
            int maxSlot = 0;
            for (int d = 0; d < _docCount; d++) if (_tf[d] != null) maxSlot = Math.Max(maxSlot, _slot[d]);
            allowed = new bool[maxSlot + 1];
            for (int s = 0; s <= maxSlot; s++) allowed[s] = slotAllowed(s);
        }
        foreach (var (term, qcount) in qtf)
        {
            if (!_postings.TryGetValue(term, out var p)) continue;
            double w = IdfOf(p.Count) * qcount * (K1 + 1);
            var docs = p.Docs; var tfs = p.Tfs;
            for (int i = 0; i < p.Count; i++)
            {
                int d = docs[i];
                if (allowed != null && !allowed[_slot[d]]) continue;
                int tf = tfs[i];
                if (acc[d] == 0) touched.Add(d);
                acc[d] += w * tf / (tf + K1 * (1 - B + B * _len[d] / avgdl));
            }
        }
        return TopN(touched, acc, count);
    }

    List<(ulong Key, double Score)> TopN(List<int> touched, double[] acc, int count)
    {
        var heap = new PriorityQueue<int, (double Score, ulong Key)>(Comparer<(double Score, ulong Key)>.Create(
            (a, b) => a.Score != b.Score ? a.Score.CompareTo(b.Score) : b.Key.CompareTo(a.Key)));
        foreach (var d in touched)
        {
            var item = (acc[d], _key[d]);
            if (heap.Count < count) heap.Enqueue(d, item);
            else if (heap.TryPeek(out _, out var min) && (item.Item1 > min.Score || (item.Item1 == min.Score && item.Item2 < min.Key)))
            { heap.Dequeue(); heap.Enqueue(d, item); }
        }
        var list = new List<(ulong Key, double Score)>(heap.Count);
        while (heap.TryDequeue(out var d, out var p)) list.Add((p.Key, p.Score));
        list.Reverse();
        return list;
    }
}
