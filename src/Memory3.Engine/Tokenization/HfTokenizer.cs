using System.Text;
using System.Text.RegularExpressions;

namespace Memory3.Engine.Tokenization;

/// <summary>Encodes one piece of text that contains no added token; <c>first</c> is true for the piece at the start of the text.</summary>
internal delegate void SegmentEncoder(string segment, bool first, List<int> output);

/// <summary>
/// The one <see cref="ITokenizer"/> implementation: added-token splitting, BOS, decoding and token bytes are shared;
/// the model-specific part (library byte-level BPE, SentencePiece model, or <see cref="MergeBpe"/>) is a <see cref="SegmentEncoder"/>.
/// </summary>
internal sealed class HfTokenizer : ITokenizer
{
    readonly string?[] _idToToken;
    readonly Dictionary<string, int> _tokenToId;
    readonly byte[][] _bytes;
    readonly bool[] _special;
    readonly Regex? _addedSplitter;
    readonly Dictionary<string, int> _added;
    readonly SegmentEncoder _encodeSegment;
    readonly int[] _eos;

    public HfTokenizer(
        string?[] idToToken, Dictionary<string, int> tokenToId, byte[][] bytes, bool[] special,
        Dictionary<string, int> addedTokens, SegmentEncoder encodeSegment, bool stripLeadingSpace,
        int? bos, IReadOnlyList<int> eos, string? chatTemplate, bool addBos)
    {
        _idToToken = idToToken;
        _tokenToId = tokenToId;
        _bytes = bytes;
        _special = special;
        _added = addedTokens;
        _encodeSegment = encodeSegment;
        StripsLeadingSpace = stripLeadingSpace;
        BosTokenId = bos;
        _eos = eos.ToArray();
        ChatTemplate = chatTemplate;
        AddBosToken = addBos && bos is not null;
        if (addedTokens.Count > 0)
        {
            // Longest first, so "<|im_start|>" wins over any shorter added token that is its prefix.
            var alternatives = addedTokens.Keys.Where(k => k.Length > 0).OrderByDescending(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).Select(Regex.Escape);
            _addedSplitter = new Regex(string.Join("|", alternatives), RegexOptions.CultureInvariant);
        }
    }

    public int VocabSize => _idToToken.Length;
    public int? BosTokenId { get; }
    public IReadOnlyList<int> EosTokenIds => _eos;
    public string? ChatTemplate { get; }
    public bool AddBosToken { get; }

    /// <summary>SentencePiece rule: the decoder drops one leading space of the whole decoded text (decoder <c>Strip</c> / <c>Metaspace</c>, <c>add_dummy_prefix</c>).</summary>
    internal bool StripsLeadingSpace { get; }

    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addSpecialTokens && AddBosToken) ids.Add(BosTokenId!.Value);
        if (_addedSplitter is null) { if (text.Length > 0) _encodeSegment(text, true, ids); return ids.ToArray(); }
        int pos = 0;
        bool first = true;
        for (var m = _addedSplitter.Match(text); m.Success; m = m.NextMatch())
        {
            if (m.Index > pos) _encodeSegment(text.Substring(pos, m.Index - pos), first, ids);
            ids.Add(_added[m.Value]);
            pos = m.Index + m.Length;
            first = false;
        }
        if (pos < text.Length) _encodeSegment(pos == 0 ? text : text.Substring(pos), first, ids);
        return ids.ToArray();
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var buf = new List<byte>(ids.Length * 4);
        foreach (int id in ids)
        {
            if (skipSpecialTokens && IsSpecial(id)) continue;
            buf.AddRange(TokenBytes(id));
        }
        var text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(buf));
        return StripsLeadingSpace && text.StartsWith(' ') ? text.Substring(1) : text;
    }

    public byte[] TokenBytes(int id)
    {
        if ((uint)id >= (uint)_bytes.Length) throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary (size {VocabSize})");
        return _bytes[id];
    }

    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;
}
