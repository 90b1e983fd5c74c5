using System.Text;

namespace Memory3.Engine.Tokenization;

/// <summary>
/// A plain Hugging Face BPE model (merge ranks, optional byte fallback, optional ignore_merges) over Unicode characters.
/// Written here because Microsoft.ML.Tokenizers 2.0.1's <c>BpeOptions</c> has no byte fallback, which every
/// SentencePiece-style <c>tokenizer.json</c> (Mistral, Llama-2: <c>"byte_fallback": true</c>) relies on for
/// characters outside the vocabulary. Semantics follow huggingface/tokenizers <c>models/bpe/word.rs</c>:
/// repeatedly apply the lowest-ranked merge (leftmost first on ties) until none applies.
/// </summary>
internal sealed class MergeBpe
{
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<long, (int Rank, int NewId)> _merges;
    readonly int? _unkId;
    readonly bool _fuseUnk;
    readonly bool _byteFallback;
    readonly bool _ignoreMerges;
    readonly int[] _byteIds; // <0xNN> ids, -1 when absent

    public MergeBpe(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string? unkToken,
        bool fuseUnk, bool byteFallback, bool ignoreMerges, string fileForErrors)
    {
        _vocab = vocab;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (l, r) = merges[rank];
            if (!vocab.TryGetValue(l, out int li) || !vocab.TryGetValue(r, out int ri) || !vocab.TryGetValue(l + r, out int ni))
                throw new Model.ModelLoadException($"{fileForErrors}: merge #{rank} '{l} {r}' uses a token that is not in model.vocab");
            _merges.TryAdd(Key(li, ri), (rank, ni));
        }
        _unkId = unkToken is not null && vocab.TryGetValue(unkToken, out int u) ? u : null;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++) _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    struct Sym { public int Id; public int Prev; public int Next; }

    /// <summary>Appends the ids of one pre-tokenized word to <paramref name="output"/>.</summary>
    public void EncodeWord(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole)) { output.Add(whole); return; }

        var syms = new List<Sym>(word.Length);
        Span<byte> utf8 = stackalloc byte[4];
        bool lastWasUnk = false;
        for (int i = 0; i < word.Length;)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            string ch = word.Substring(i, len);
            i += len;
            if (_vocab.TryGetValue(ch, out int id)) { Add(syms, id); lastWasUnk = false; continue; }
            if (_byteFallback)
            {
                int n = Encoding.UTF8.GetBytes(ch.AsSpan(), utf8);
                bool all = true;
                for (int k = 0; k < n; k++) all &= _byteIds[utf8[k]] >= 0;
                if (all)
                {
                    for (int k = 0; k < n; k++) Add(syms, _byteIds[utf8[k]]);
                    lastWasUnk = false;
                    continue;
                }
            }
            if (_unkId is int unk)
            {
                if (!(_fuseUnk && lastWasUnk)) Add(syms, unk);
                lastWasUnk = true;
            }
            // else: no unk token configured, the character is dropped (as huggingface/tokenizers does)
        }

        var heap = new PriorityQueue<(int Pos, int Left, int Right), (int Rank, int Pos)>();
        for (int i = 0; i + 1 < syms.Count; i++) Push(heap, syms, i);
        var arr = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(syms);
        while (heap.TryDequeue(out var top, out var pri))
        {
            ref var s = ref arr[top.Pos];
            if (s.Id != top.Left || s.Next < 0 || arr[s.Next].Id != top.Right) continue; // stale
            var (_, newId) = _merges[Key(top.Left, top.Right)];
            int right = s.Next;
            s.Id = newId;
            s.Next = arr[right].Next;
            arr[right].Id = -1; // dead
            if (s.Next >= 0) arr[s.Next].Prev = top.Pos;
            if (s.Prev >= 0) Push(heap, syms, s.Prev);
            if (s.Next >= 0) Push(heap, syms, top.Pos);
        }
        for (int i = 0; i >= 0 && syms.Count > 0; i = arr[i].Next) output.Add(arr[i].Id);
    }

    static void Add(List<Sym> syms, int id)
    {
        int n = syms.Count;
        if (n > 0) { var last = syms[n - 1]; last.Next = n; syms[n - 1] = last; }
        syms.Add(new Sym { Id = id, Prev = n - 1, Next = -1 });
    }

    void Push(PriorityQueue<(int, int, int), (int, int)> heap, List<Sym> syms, int pos)
    {
        var s = syms[pos];
        if (s.Next < 0) return;
        int r = syms[s.Next].Id;
        if (_merges.TryGetValue(Key(s.Id, r), out var m)) heap.Enqueue((pos, s.Id, r), (m.Rank, pos));
    }
}
