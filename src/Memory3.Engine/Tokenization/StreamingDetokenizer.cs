using System.Text;

namespace Memory3.Engine.Tokenization;

/// <summary>
/// Turns generated ids into text as they arrive. Bytes of an unfinished UTF-8 character (a character split across
/// byte-fallback or byte-level tokens) are held back until it completes, so no U+FFFD is emitted for valid output.
/// The concatenation of every <see cref="Push"/> result and <see cref="Flush"/> equals
/// <see cref="ITokenizer.Decode"/> of all ids with the same <c>skipSpecialTokens</c>, SentencePiece's
/// leading-space rule included. One instance per sequence; not thread-safe.
/// </summary>
public sealed class StreamingDetokenizer
{
    readonly ITokenizer _tokenizer;
    readonly bool _skipSpecial;
    readonly bool _stripLeadingSpace;
    byte[] _pending = new byte[16];
    int _count;
    bool _started;

    public StreamingDetokenizer(ITokenizer t, bool skipSpecialTokens = true)
    {
        _tokenizer = t ?? throw new ArgumentNullException(nameof(t));
        _skipSpecial = skipSpecialTokens;
        _stripLeadingSpace = t is HfTokenizer h && h.StripsLeadingSpace;
    }

    /// <summary>Adds one id; returns the text completed by it (often "").</summary>
    public string Push(int id)
    {
        if (_skipSpecial && _tokenizer.IsSpecial(id)) return "";
        var bytes = _tokenizer.TokenBytes(id);
        if (_count + bytes.Length > _pending.Length) Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _count + bytes.Length));
        bytes.CopyTo(_pending, _count);
        _count += bytes.Length;
        return Emit(CompletePrefix(_pending.AsSpan(0, _count)));
    }

    /// <summary>Returns whatever is held back (an unfinished character decodes as U+FFFD) and resets.</summary>
    public string Flush()
    {
        var s = Emit(_count);
        _started = false;
        return s;
    }

    string Emit(int n)
    {
        if (n == 0) return "";
        var text = Encoding.UTF8.GetString(_pending, 0, n);
        Buffer.BlockCopy(_pending, n, _pending, 0, _count - n);
        _count -= n;
        if (!_started && text.Length > 0)
        {
            _started = true;
            if (_stripLeadingSpace && text[0] == ' ') text = text[1..];
        }
        return text;
    }

    /// <summary>Length of the longest prefix that does not end inside an unfinished UTF-8 sequence.</summary>
    static int CompletePrefix(ReadOnlySpan<byte> b)
    {
        int n = b.Length;
        // Look back at most 3 bytes for the lead byte of the last sequence.
        for (int back = 1; back <= Math.Min(3, n); back++)
        {
            byte c = b[n - back];
            if ((c & 0xC0) == 0x80) continue; // continuation byte
            int need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 1;
            return need > back ? n - back : n;
        }
        return n; // only continuation bytes at the end: invalid anyway, emit as the full decode would
    }
}
