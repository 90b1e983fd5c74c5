using System.Text;
using System.Text.Json;
using Cloud.Unum.USearch;

namespace Memory3.Engine.Memory.Retrieve;

/// <summary>Tuning of a <see cref="HybridRetriever"/>, fixed when it is created or opened.</summary>
public sealed record HybridRetrieverOptions
{
    /// <summary>HNSW graph degree (USearch connectivity).</summary>
    public int Connectivity { get; init; } = 16;
    /// <summary>HNSW beam width while adding. Persisted indexes reopen with USearch's default (128).</summary>
    public int ExpansionAdd { get; init; } = 128;
    /// <summary>HNSW beam width while searching. Persisted indexes reopen with USearch's default (64).</summary>
    public int ExpansionSearch { get; init; } = 64;
    /// <summary>Reciprocal rank fusion constant: a candidate at 1-based rank r in a list scores 1/(k + r).</summary>
    public int RrfK { get; init; } = 60;
    /// <summary>Candidates per list = this × TopK unless <see cref="RetrievalOptions.Candidates"/> is set.</summary>
    public int CandidateMultiplier { get; init; } = 4;
    /// <summary>
    /// Bonus added to a candidate's fused score, scaled by the IDF-weighted share of the query's key terms it contains
    /// (numbers, and name-like terms held by at most <see cref="RareTermMaxDocFraction"/> of the references; see
    /// <see cref="LexicalTokens.KeyTerms"/>). The default equals one
    /// first place in one list, 1/(k+1): a reference holding the query's rare name or number outranks a dense-only
    /// favourite that lacks it, while two references that both hold it are ordered by plain RRF. 0 disables it.
    /// </summary>
    public double KeyTermBoost { get; init; } = 1.0 / 61;
    /// <summary>A name-like query token is a key term only if at most this share of the references hold it (numbers always are, unless every reference holds them).</summary>
    public double RareTermMaxDocFraction { get; init; } = 0.05;
    /// <summary>Weights of the two lists in the fusion: a candidate scores Σ weight/(k + rank).</summary>
    public double DenseWeight { get; init; } = 1.0;
    public double LexicalWeight { get; init; } = 1.0;
    /// <summary>References embedded per embedder call while adding or rebuilding.</summary>
    public int EmbedBatchSize { get; init; } = 256;
}

/// <summary>What <see cref="HybridRetriever.Rebuild"/> did.</summary>
public sealed record RebuildResult(int Kept, int Embedded, int Removed);

/// <summary>
/// Reference retrieval over dense embeddings (an <see cref="IEmbedder"/> + one USearch HNSW cosine index per
/// namespace) and BM25 (<see cref="Bm25Index"/>), fused by reciprocal rank fusion with a key-term bonus; see
/// docs/retrieval.md. Namespaces are isolated by construction: each has its own HNSW graph, and BM25 skips other
/// namespaces' documents while scoring, so a filtered search never needs to over-fetch.
/// Thread-safe: searches run concurrently under a read lock, Add/Remove/Rebuild take the write lock (embedding
/// happens outside the lock).
/// </summary>
public sealed class HybridRetriever : IMemoryRetriever, IDisposable
{
    public const int FormatVersion = 1;
    const string ManifestFile = "manifest.json", RefsFile = "refs.bin";
    static readonly byte[] RefsMagic = "M3RI"u8.ToArray();

    sealed record Entry(ulong Key, string Id, string Namespace, string Text, int Slot);

    sealed class NamespaceIndex(string ns, int slot, USearchIndex dense) : IDisposable
    {
        public string Namespace { get; } = ns;
        public int Slot { get; } = slot;
        public USearchIndex Dense { get; } = dense;
        public int Live;
        public void Dispose() => Dense.Dispose();
    }

    readonly IEmbedder _embedder;
    readonly HybridRetrieverOptions _options;
    readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    readonly Dictionary<string, Entry> _byId = new(StringComparer.Ordinal);
    readonly Dictionary<ulong, Entry> _byKey = new();
    readonly Dictionary<string, NamespaceIndex> _namespaces = new(StringComparer.Ordinal);
    readonly List<NamespaceIndex> _slots = new();
    readonly Bm25Index _lexical = new();
    ulong _nextKey = 1;
    ulong _fingerprint;
    bool _disposed;

    public HybridRetriever(IEmbedder embedder, HybridRetrieverOptions? options = null)
    {
        _embedder = embedder ?? throw new ArgumentNullException(nameof(embedder));
        _options = options ?? new HybridRetrieverOptions();
    }

    /// <summary>The folder <see cref="Save()"/> writes to: {bank}/{indexName} when opened with <see cref="Open"/>; settable (a writer that
    /// started from another writer's index saves into its own).</summary>
    public string? IndexDirectory { get; set; }

    /// <summary>The index folder of a bank's default writer (and of a read-only bank): <c>index</c>.</summary>
    public const string DefaultIndexName = "index";

    /// <summary>A writer's index folder in the bank: <c>index</c> for the default writer, <c>index-{writerId}</c> otherwise.</summary>
    public static string IndexNameFor(string? writerId) => string.IsNullOrEmpty(writerId) ? DefaultIndexName : DefaultIndexName + "-" + writerId;

    /// <summary>The names of the saved indexes in <paramref name="bankDirectory"/> (<c>index</c>, <c>index-*</c>; not the temporary folders of a save in progress).</summary>
    public static IReadOnlyList<string> IndexNames(string bankDirectory)
    {
        if (!Directory.Exists(bankDirectory)) return [];
        return Directory.EnumerateDirectories(bankDirectory)
            .Select(d => Path.GetFileName(d))
            .Where(n => (n == DefaultIndexName || n.StartsWith(DefaultIndexName + "-", StringComparison.Ordinal)) && !n.Contains(".tmp-", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The stored vector of reference <paramref name="id"/> when this index holds it with exactly this namespace and text.</summary>
    public float[]? TryGetVector(string id, string ns, string text)
    {
        _lock.EnterReadLock();
        try
        {
            if (_disposed || !_byId.TryGetValue(id, out var e) || e.Namespace != ns || e.Text != text) return null;
            return _slots[e.Slot].Dense.Get(e.Key, out float[] v) >= 1 && v is { Length: > 0 } && v.Length == _embedder.Dimensions ? v : null;
        }
        finally { _lock.ExitReadLock(); }
    }
    /// <summary>True when <see cref="Open"/> found no usable index (missing, from another model, corrupt).</summary>
    public bool NeedsRebuild { get; private set; }
    public string? NeedsRebuildReason { get; private set; }
    public IEmbedder Embedder => _embedder;

    public int Count { get { _lock.EnterReadLock(); try { return _byId.Count; } finally { _lock.ExitReadLock(); } } }

    public IReadOnlyCollection<string> Namespaces
    {
        get { _lock.EnterReadLock(); try { return _namespaces.Values.Where(n => n.Live > 0).Select(n => n.Namespace).ToArray(); } finally { _lock.ExitReadLock(); } }
    }

    // ---------------------------------------------------------------- mutation

    public void Add(IReadOnlyList<(string Id, string Namespace, string Text)> refs) => Add(refs, null);

    /// <summary><see cref="IMemoryRetriever.Add"/> with progress (references processed so far).</summary>
    public int Add(IReadOnlyList<(string Id, string Namespace, string Text)> refs, IProgress<int>? progress) => Add(refs, progress, null);

    /// <summary>
    /// <see cref="Add(IReadOnlyList{ValueTuple{string, string, string}}, IProgress{int}?)"/> taking each reference's vector from
    /// <paramref name="knownVector"/> (id, namespace, text → vector or null) when it has one, e.g. from another writer's saved
    /// index; only the rest are embedded. Returns how many were embedded.
    /// </summary>
    public int Add(IReadOnlyList<(string Id, string Namespace, string Text)> refs, IProgress<int>? progress, Func<string, string, string, float[]?>? knownVector)
    {
        ArgumentNullException.ThrowIfNull(refs);
        ObjectDisposedException.ThrowIf(_disposed, this);
        int embedded = 0, batch = Math.Max(1, _options.EmbedBatchSize);
        for (int start = 0; start < refs.Count; start += batch)
        {
            var chunk = new Dictionary<string, (string Id, string Namespace, string Text)>(StringComparer.Ordinal);
            for (int i = start; i < Math.Min(refs.Count, start + batch); i++)
            {
                var r = refs[i];
                ArgumentException.ThrowIfNullOrEmpty(r.Id, "Id");
                chunk[r.Id] = (r.Id, r.Namespace ?? "", r.Text ?? "");
            }
            List<(string Id, string Namespace, string Text)> todo;
            _lock.EnterReadLock();
            try { todo = chunk.Values.Where(r => !IsUnchanged(r)).ToList(); }
            finally { _lock.ExitReadLock(); }
            if (todo.Count > 0)
            {
                var vectors = new float[todo.Count][];
                var missing = new List<int>();
                for (int i = 0; i < todo.Count; i++)
                {
                    var known = knownVector?.Invoke(todo[i].Id, todo[i].Namespace, todo[i].Text);
                    if (known is not null && known.Length == _embedder.Dimensions) vectors[i] = known;
                    else missing.Add(i);
                }
                if (missing.Count > 0)
                {
                    var fresh = _embedder.Embed(missing.Select(i => todo[i].Text).ToArray());
                    if (fresh.Length != missing.Count) throw new InvalidOperationException("embedder returned the wrong number of vectors");
                    for (int j = 0; j < missing.Count; j++) vectors[missing[j]] = fresh[j];
                }
                _lock.EnterWriteLock();
                try { InsertLocked(todo, vectors); }
                finally { _lock.ExitWriteLock(); }
                embedded += missing.Count;
            }
            progress?.Report(Math.Min(refs.Count, start + batch));
        }
        return embedded;
    }

    bool IsUnchanged((string Id, string Namespace, string Text) r) =>
        _byId.TryGetValue(r.Id, out var e) && e.Namespace == r.Namespace && e.Text == r.Text;

    void InsertLocked(List<(string Id, string Namespace, string Text)> todo, float[][] vectors)
    {
        var perSlot = new Dictionary<NamespaceIndex, (List<ulong> Keys, List<float[]> Vectors)>();
        for (int i = 0; i < todo.Count; i++)
        {
            var r = todo[i];
            if (IsUnchanged(r)) continue; // added meanwhile by another caller
            if (vectors[i].Length != _embedder.Dimensions) throw new InvalidOperationException("embedding has the wrong dimensions");
            RemoveLocked(r.Id);
            var ns = GetOrCreateNamespace(r.Namespace);
            var e = new Entry(_nextKey++, r.Id, r.Namespace, r.Text, ns.Slot);
            _byId[e.Id] = e;
            _byKey[e.Key] = e;
            _fingerprint += EntryHash(e.Id, e.Namespace, e.Text);
            _lexical.Add(e.Key, e.Slot, e.Text);
            ns.Live++;
            if (!perSlot.TryGetValue(ns, out var list)) perSlot[ns] = list = (new(), new());
            list.Keys.Add(e.Key);
            list.Vectors.Add(vectors[i]);
        }
        foreach (var (ns, list) in perSlot) ns.Dense.Add(list.Keys.ToArray(), list.Vectors.ToArray()); // one reserve per batch
    }

    NamespaceIndex GetOrCreateNamespace(string ns)
    {
        if (_namespaces.TryGetValue(ns, out var idx)) return idx;
        var dense = new USearchIndex(MetricKind.Cos, ScalarKind.Float32, (ulong)_embedder.Dimensions,
            (ulong)_options.Connectivity, (ulong)_options.ExpansionAdd, (ulong)_options.ExpansionSearch);
        idx = new NamespaceIndex(ns, _slots.Count, dense);
        _namespaces[ns] = idx;
        _slots.Add(idx);
        return idx;
    }

    public bool Remove(string id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _lock.EnterWriteLock();
        try { return RemoveLocked(id); }
        finally { _lock.ExitWriteLock(); }
    }

    bool RemoveLocked(string id)
    {
        if (!_byId.Remove(id, out var e)) return false;
        _byKey.Remove(e.Key);
        _fingerprint -= EntryHash(e.Id, e.Namespace, e.Text);
        _lexical.Remove(e.Key);
        var ns = _slots[e.Slot];
        ns.Dense.Remove(e.Key);
        ns.Live--;
        return true;
    }

    /// <summary>
    /// Brings the index in line with <paramref name="records"/> (the disk store's references): entries whose id, namespace
    /// and text are unchanged keep their vectors, new or changed ones are embedded, the rest are removed. Clears
    /// <see cref="NeedsRebuild"/>. Does not save: call <see cref="Save()"/> after.
    /// </summary>
    public RebuildResult Rebuild(IEnumerable<(string Id, string Namespace, string Text)> records, IProgress<int>? progress = null) =>
        Rebuild(records, progress, null);

    /// <summary><see cref="Rebuild(IEnumerable{ValueTuple{string, string, string}}, IProgress{int}?)"/> with vectors from <paramref name="knownVector"/> where it has them (see <see cref="Add(IReadOnlyList{ValueTuple{string, string, string}}, IProgress{int}?, Func{string, string, string, float[]?}?)"/>).</summary>
    public RebuildResult Rebuild(IEnumerable<(string Id, string Namespace, string Text)> records, IProgress<int>? progress, Func<string, string, string, float[]?>? knownVector)
    {
        var desired = new Dictionary<string, (string Id, string Namespace, string Text)>(StringComparer.Ordinal);
        foreach (var r in records) desired[r.Id] = (r.Id, r.Namespace ?? "", r.Text ?? "");
        int removed = 0;
        _lock.EnterWriteLock();
        try
        {
            foreach (var id in _byId.Keys.Where(id => !desired.ContainsKey(id)).ToList())
                if (RemoveLocked(id)) removed++;
        }
        finally { _lock.ExitWriteLock(); }
        int embedded = Add(desired.Values.ToList(), progress, knownVector);
        NeedsRebuild = false;
        NeedsRebuildReason = null;
        return new RebuildResult(desired.Count - embedded, embedded, removed);
    }

    /// <summary>An order-independent digest of (id, namespace, text) records, comparable with <see cref="ContentFingerprint"/>.</summary>
    public static ulong Fingerprint(IEnumerable<(string Id, string Namespace, string Text)> records)
    {
        var seen = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var r in records) seen[r.Id] = EntryHash(r.Id, r.Namespace ?? "", r.Text ?? "");
        ulong sum = 0;
        foreach (var h in seen.Values) sum += h;
        return sum;
    }

    /// <summary>The digest of what is indexed now (see <see cref="Fingerprint"/>).</summary>
    public ulong ContentFingerprint { get { _lock.EnterReadLock(); try { return _fingerprint; } finally { _lock.ExitReadLock(); } } }

    /// <summary>True when the index holds exactly <paramref name="records"/> (ids, namespaces and texts).</summary>
    public bool IsInSync(IEnumerable<(string Id, string Namespace, string Text)> records) => !NeedsRebuild && Fingerprint(records) == ContentFingerprint;

    static ulong EntryHash(string id, string ns, string text)
    {
        ulong h = 14695981039346656037UL;
        void Mix(string s) { foreach (var ch in s) { h ^= ch; h *= 1099511628211UL; } h ^= 0xFFFF; h *= 1099511628211UL; }
        Mix(id); Mix(ns); Mix(text);
        h ^= h >> 33; h *= 0xff51afd7ed558ccdUL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53UL; h ^= h >> 33;
        return h;
    }

    // ---------------------------------------------------------------- search

    public IReadOnlyList<RetrievalHit> Search(string query, RetrievalOptions options) => SearchMany([query], options)[0];

    public IReadOnlyList<IReadOnlyList<RetrievalHit>> SearchMany(IReadOnlyList<string> queries, RetrievalOptions options)
    {
        ArgumentNullException.ThrowIfNull(queries);
        options ??= RetrievalOptions.Default;
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (options.TopK <= 0) throw new ArgumentOutOfRangeException(nameof(options), "TopK must be positive");
        var results = new IReadOnlyList<RetrievalHit>[queries.Count];
        if (queries.Count == 0) return results;
        int candidates = Math.Max(options.TopK, options.Candidates > 0 ? options.Candidates : _options.CandidateMultiplier * options.TopK);
        bool useDense = options.Mode != RetrievalMode.Lexical, useLexical = options.Mode != RetrievalMode.Dense;
        float[][]? qv = useDense ? _embedder.Embed(queries.Select(q => q ?? "").ToArray()) : null;
        var qtokens = queries.Select(q => Bm25Index.Terms(q ?? "")).ToArray();
        var qkeys = queries.Select(q => LexicalTokens.KeyTerms(q ?? "")).ToArray();
        var qwords = options.OverlapFilter ? queries.Select(q => LexicalTokens.Tokenize(q ?? "")).ToArray() : null;

        _lock.EnterReadLock();
        try
        {
            HashSet<int>? allowed = null;
            if (options.Namespaces != null)
            {
                allowed = new HashSet<int>();
                foreach (var ns in options.Namespaces)
                    if (ns != null && _namespaces.TryGetValue(ns, out var idx)) allowed.Add(idx.Slot);
            }
            for (int q = 0; q < queries.Count; q++)
                results[q] = SearchLocked(qv?[q], qtokens[q], qkeys[q], qwords?[q], options, candidates, allowed, useDense, useLexical);
        }
        finally { _lock.ExitReadLock(); }
        return results;
    }

    sealed class Candidate(Entry e)
    {
        public Entry Entry = e;
        public double Fused;
        public double? Dense, Lexical;
    }

    List<RetrievalHit> SearchLocked(float[]? qv, List<string> qtokens, List<string> qkeys, List<string>? queryWords, RetrievalOptions options, int candidates,
        HashSet<int>? allowed, bool useDense, bool useLexical)
    {
        var hits = new List<RetrievalHit>();
        if (_byId.Count == 0 || (allowed != null && allowed.Count == 0)) return hits;
        var byKey = new Dictionary<ulong, Candidate>();
        double k = _options.RrfK;

        if (useDense)
        {
            var dense = DenseSearchLocked(qv!, candidates, allowed);
            for (int r = 0; r < dense.Count; r++)
            {
                var c = Get(byKey, dense[r].Key);
                if (c == null) continue;
                c.Dense = dense[r].Similarity;
                c.Fused += _options.DenseWeight / (k + r + 1);
            }
        }
        if (useLexical)
        {
            var lex = _lexical.Search(qtokens, candidates, allowed == null ? null : allowed.Contains);
            for (int r = 0; r < lex.Count; r++)
            {
                var c = Get(byKey, lex[r].Key);
                if (c == null) continue;
                c.Lexical = lex[r].Score;
                c.Fused += _options.LexicalWeight / (k + r + 1);
            }
        }

        var list = byKey.Values.ToList();
        if (options.Mode == RetrievalMode.Hybrid)
        {
            // Fill in the other list's score for candidates only one list found (exact cosine / BM25 of that document).
            foreach (var c in list)
            {
                c.Dense ??= ExactCosine(qv!, c.Entry);
                c.Lexical ??= _lexical.Score(c.Entry.Key, qtokens);
            }
            ApplyKeyTermBonus(list, qkeys);
        }
        else
        {
            foreach (var c in list) c.Fused = options.Mode == RetrievalMode.Dense ? c.Dense ?? 0 : c.Lexical ?? 0;
        }

        list.Sort((a, b) =>
        {
            int cmp = b.Fused.CompareTo(a.Fused);
            if (cmp != 0) return cmp;
            cmp = (b.Dense ?? double.MinValue).CompareTo(a.Dense ?? double.MinValue);
            return cmp != 0 ? cmp : string.CompareOrdinal(a.Entry.Id, b.Entry.Id);
        });

        foreach (var c in list)
        {
            if (hits.Count >= options.TopK) break;
            if (queryWords != null && LcsOverlap.Compute(queryWords, LexicalTokens.Tokenize(c.Entry.Text)) > options.OverlapThreshold) continue;
            hits.Add(new RetrievalHit(c.Entry.Id, c.Entry.Namespace, c.Entry.Text, c.Fused, c.Dense, c.Lexical));
        }
        return hits;
    }

    Candidate? Get(Dictionary<ulong, Candidate> byKey, ulong key)
    {
        if (byKey.TryGetValue(key, out var c)) return c;
        if (!_byKey.TryGetValue(key, out var e)) return null; // removed
        return byKey[key] = new Candidate(e);
    }

    List<(ulong Key, double Similarity)> DenseSearchLocked(float[] qv, int count, HashSet<int>? allowed)
    {
        var all = new List<(ulong Key, double Similarity)>();
        foreach (var ns in _slots)
        {
            if (ns.Live == 0 || (allowed != null && !allowed.Contains(ns.Slot))) continue;
            int n = ns.Dense.Search(qv, Math.Min(count, ns.Live), out var keys, out var distances);
            for (int i = 0; i < n; i++) all.Add((keys[i], 1.0 - distances[i]));
        }
        all.Sort((a, b) => b.Similarity != a.Similarity ? b.Similarity.CompareTo(a.Similarity) : a.Key.CompareTo(b.Key));
        if (all.Count > count) all.RemoveRange(count, all.Count - count);
        return all;
    }

    double? ExactCosine(float[] qv, Entry e)
    {
        if (_slots[e.Slot].Dense.Get(e.Key, out float[] v) < 1 || v == null) return null;
        double dot = 0, nv = 0;
        for (int i = 0; i < v.Length; i++) { dot += (double)qv[i] * v[i]; nv += (double)v[i] * v[i]; }
        return nv > 0 ? dot / Math.Sqrt(nv) : 0; // qv is unit length
    }

    void ApplyKeyTermBonus(List<Candidate> list, List<string> qkeys)
    {
        if (_options.KeyTermBoost <= 0 || list.Count == 0) return;
        int n = _lexical.Count;
        double maxDf = Math.Max(1, _options.RareTermMaxDocFraction * n);
        var keyTerms = new List<(string Term, double Idf)>();
        foreach (var t in qkeys)
        {
            int df = _lexical.DocFrequency(t);
            if (df == 0) continue;
            if (df <= maxDf || (LexicalTokens.IsNumeric(t) && df < n)) keyTerms.Add((t, _lexical.Idf(t)));
        }
        if (keyTerms.Count == 0) return;
        double total = keyTerms.Sum(x => x.Idf);
        foreach (var c in list)
        {
            double matched = 0;
            foreach (var (term, idf) in keyTerms) if (_lexical.Contains(c.Entry.Key, term)) matched += idf;
            c.Fused += _options.KeyTermBoost * matched / total;
        }
    }

    // ---------------------------------------------------------------- persistence

    /// <summary>
    /// Opens the index in {<paramref name="bankDirectory"/>}/{<paramref name="indexName"/>} (only reads). Never throws for a missing, foreign (another embedder)
    /// or damaged index: it returns an empty retriever with <see cref="NeedsRebuild"/> set and the reason; the caller then
    /// runs <see cref="Rebuild"/> with the disk store's records and <see cref="Save()"/>s (or use <see cref="OpenOrRebuild"/>).
    /// </summary>
    public static HybridRetriever Open(string bankDirectory, IEmbedder embedder, HybridRetrieverOptions? options = null, string indexName = DefaultIndexName)
    {
        var dir = Path.Combine(bankDirectory, indexName);
        var r = new HybridRetriever(embedder, options) { IndexDirectory = dir };
        try
        {
            var reason = r.TryLoad(dir);
            if (reason != null) { r.ResetLocked(); r.NeedsRebuild = true; r.NeedsRebuildReason = reason; }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or JsonException or USearchException or EndOfStreamException or UnauthorizedAccessException)
        {
            r.ResetLocked();
            r.NeedsRebuild = true;
            r.NeedsRebuildReason = "unreadable index: " + ex.Message;
        }
        return r;
    }

    /// <summary>
    /// Opens the bank's index and, when it is missing, stale or not exactly <paramref name="records"/>, rebuilds it from
    /// them (re-embedding only what changed) and saves it. <paramref name="records"/> is enumerated once or twice.
    /// </summary>
    public static HybridRetriever OpenOrRebuild(string bankDirectory, IEmbedder embedder,
        Func<IEnumerable<(string Id, string Namespace, string Text)>> records, HybridRetrieverOptions? options = null, IProgress<int>? progress = null)
    {
        var r = Open(bankDirectory, embedder, options);
        if (r.NeedsRebuild || !r.IsInSync(records()))
        {
            r.Rebuild(records(), progress);
            r.Save();
        }
        return r;
    }

    sealed record ManifestNamespace(string Namespace, int Slot, int Count);
    sealed record Manifest(int Format, string ModelId, int Dimensions, ulong NextKey, int Count, ulong Fingerprint, List<ManifestNamespace> Namespaces);

    string? TryLoad(string dir)
    {
        var manifestPath = Path.Combine(dir, ManifestFile);
        if (!File.Exists(manifestPath)) return "no index";
        var m = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(manifestPath)) ?? throw new InvalidDataException("empty manifest");
        if (m.Format != FormatVersion) return $"index format {m.Format}, expected {FormatVersion}";
        if (m.ModelId != _embedder.ModelId || m.Dimensions != _embedder.Dimensions)
            return $"index built with {m.ModelId} ({m.Dimensions}d), embedder is {_embedder.ModelId} ({_embedder.Dimensions}d)";

        _lock.EnterWriteLock();
        try
        {
            foreach (var mn in m.Namespaces.OrderBy(x => x.Slot))
            {
                if (mn.Slot != _slots.Count) throw new InvalidDataException("namespace slots are not dense");
                var path = Path.Combine(dir, $"dense-{mn.Slot}.usearch");
                if (!File.Exists(path)) return $"missing {Path.GetFileName(path)}";
                var dense = new USearchIndex(path);
                var idx = new NamespaceIndex(mn.Namespace, mn.Slot, dense);
                _namespaces[mn.Namespace] = idx;
                _slots.Add(idx);
                if ((int)dense.Dimensions() != _embedder.Dimensions) return "dense index has the wrong dimensions";
                if ((long)dense.Size() != mn.Count) return $"dense index of '{mn.Namespace}' holds {dense.Size()} vectors, manifest says {mn.Count}";
            }
            using (var fs = new FileStream(Path.Combine(dir, RefsFile), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
            using (var br = new BinaryReader(fs, Encoding.UTF8))
            {
                if (!br.ReadBytes(4).AsSpan().SequenceEqual(RefsMagic) || br.ReadInt32() != FormatVersion) throw new InvalidDataException("bad refs file header");
                int count = br.ReadInt32();
                if (count != m.Count) return "refs file and manifest disagree";
                for (int i = 0; i < count; i++)
                {
                    ulong key = br.ReadUInt64();
                    int slot = br.ReadInt32();
                    string id = br.ReadString(), ns = br.ReadString(), text = br.ReadString();
                    if (slot < 0 || slot >= _slots.Count || _slots[slot].Namespace != ns) throw new InvalidDataException("bad namespace slot");
                    var e = new Entry(key, id, ns, text, slot);
                    _byId[id] = e;
                    _byKey[key] = e;
                    _fingerprint += EntryHash(id, ns, text);
                    _lexical.Add(key, slot, text);
                    _slots[slot].Live++;
                }
            }
            if (_fingerprint != m.Fingerprint || _byId.Count != m.Count) return "refs file does not match its manifest";
            foreach (var ns in _slots)
                if (ns.Live != (int)ns.Dense.Size()) return $"namespace '{ns.Namespace}' has {ns.Live} references but {ns.Dense.Size()} vectors";
            _nextKey = Math.Max(m.NextKey, _byKey.Keys.DefaultIfEmpty(0UL).Max() + 1);
        }
        finally { _lock.ExitWriteLock(); }
        return null;
    }

    void ResetLocked()
    {
        _lock.EnterWriteLock();
        try
        {
            foreach (var s in _slots) s.Dispose();
            _slots.Clear(); _namespaces.Clear(); _byId.Clear(); _byKey.Clear();
            _lexical.Clear();
            _fingerprint = 0; _nextKey = 1;
        }
        finally { _lock.ExitWriteLock(); }
    }

    /// <summary>Saves to <see cref="IndexDirectory"/> (set by <see cref="Open"/>).</summary>
    public void Save()
    {
        if (IndexDirectory == null) throw new InvalidOperationException("no index directory: use Open(bankDirectory, …) or Save(indexDirectory)");
        Save(IndexDirectory);
    }

    /// <summary>
    /// Writes the index to <paramref name="indexDirectory"/>: manifest.json, refs.bin (key, namespace slot, id, namespace,
    /// text per reference) and one dense-{slot}.usearch per namespace. The files are written to a sibling temporary folder
    /// that then replaces the old one, so a crash leaves either the old index, or none (which Open reports as missing).
    /// </summary>
    public void Save(string indexDirectory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var full = Path.GetFullPath(indexDirectory).TrimEnd(Path.DirectorySeparatorChar);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(tmp);
        try
        {
            _lock.EnterReadLock();
            try
            {
                var entries = _byId.Values.OrderBy(e => e.Key).ToList();
                using (var fs = new FileStream(Path.Combine(tmp, RefsFile), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                using (var bw = new BinaryWriter(fs, Encoding.UTF8))
                {
                    bw.Write(RefsMagic); bw.Write(FormatVersion); bw.Write(entries.Count);
                    foreach (var e in entries) { bw.Write(e.Key); bw.Write(e.Slot); bw.Write(e.Id); bw.Write(e.Namespace); bw.Write(e.Text); }
                    bw.Flush();
                    fs.Flush(flushToDisk: true);
                }
                foreach (var ns in _slots) ns.Dense.Save(Path.Combine(tmp, $"dense-{ns.Slot}.usearch"));
                var manifest = new Manifest(FormatVersion, _embedder.ModelId, _embedder.Dimensions, _nextKey, entries.Count, _fingerprint,
                    _slots.Select(s => new ManifestNamespace(s.Namespace, s.Slot, s.Live)).ToList());
                File.WriteAllText(Path.Combine(tmp, ManifestFile), JsonSerializer.Serialize(manifest, new JsonSerializerOptions { WriteIndented = true }));
            }
            finally { _lock.ExitReadLock(); }
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.Move(tmp, full);
        }
        catch
        {
            try { if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true); } catch (IOException) { }
            throw;
        }
        IndexDirectory ??= full;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _lock.EnterWriteLock();
        try { foreach (var s in _slots) s.Dispose(); _disposed = true; }
        finally { _lock.ExitWriteLock(); }
    }
}
