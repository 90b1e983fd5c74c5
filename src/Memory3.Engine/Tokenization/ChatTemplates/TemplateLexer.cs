using System.Globalization;
using System.Text;

namespace Memory3.Engine.Tokenization.ChatTemplates;

enum TokenKind { Name, String, Integer, Float, Operator }

readonly record struct Token(TokenKind Kind, string Text, object? Value, int Line, int Column)
{
    public bool Is(string op) => Kind == TokenKind.Operator && Text == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;
    public override string ToString() => Kind == TokenKind.String ? $"string '{Text}'" : $"'{Text}'";
}

enum SegmentKind { Text, Output, Block, Comment }

/// <summary>A piece of the source: literal text, or a tag with its tokens.</summary>
sealed class Segment(SegmentKind kind, int line, int column)
{
    public SegmentKind Kind { get; } = kind;
    public int Line { get; } = line;
    public int Column { get; } = column;
    public string Text { get; set; } = "";
    /// <summary>For text: true when it starts at the beginning of a line (lstrip_blocks looks at that).</summary>
    public bool StartsLine { get; set; }
    public char LeftModifier { get; init; }   // '-', '+' or '\0'
    public char RightModifier { get; init; }
    public List<Token> Tokens { get; } = [];
}

/// <summary>
/// Splits a template into text and tags and applies Jinja's whitespace control the way transformers configures it:
/// <c>trim_blocks=True</c>, <c>lstrip_blocks=True</c>, <c>keep_trailing_newline=False</c>, plus <c>-</c>/<c>+</c> modifiers.
/// </summary>
static class TemplateLexer
{
    static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    public static List<Segment> Lex(string source)
    {
        // Jinja normalises newlines and drops one trailing newline (keep_trailing_newline=False).
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];

        var segs = new List<Segment>();
        int pos = 0, line = 1, lineStart = 0;
        while (pos < source.Length)
        {
            int open = FindOpen(source, pos);
            int end = open < 0 ? source.Length : open;
            if (end > pos)
            {
                segs.Add(new Segment(SegmentKind.Text, line, pos - lineStart + 1) { Text = source[pos..end], StartsLine = pos == 0 || source[pos - 1] == '\n' });
                Advance(source, pos, end, ref line, ref lineStart);
                pos = end;
            }
            if (open < 0) break;

            char c = source[open + 1];
            int tagLine = line, tagCol = open - lineStart + 1;
            char left = open + 2 < source.Length && source[open + 2] is '-' or '+' ? source[open + 2] : '\0';
            int bodyStart = open + 2 + (left == '\0' ? 0 : 1);
            if (c == '#')
            {
                int close = source.IndexOf("#}", bodyStart, StringComparison.Ordinal);
                if (close < 0) throw new ChatTemplateException("comment is not closed ('#}' missing)", tagLine, tagCol);
                char right = close > bodyStart && source[close - 1] == '-' ? '-' : close > bodyStart && source[close - 1] == '+' ? '+' : '\0';
                segs.Add(new Segment(SegmentKind.Comment, tagLine, tagCol) { LeftModifier = left, RightModifier = right });
                Advance(source, open, close + 2, ref line, ref lineStart);
                pos = close + 2;
                continue;
            }

            var seg = LexTag(source, c == '%' ? SegmentKind.Block : SegmentKind.Output, bodyStart, tagLine, tagCol, left, ref line, ref lineStart, out pos);
            segs.Add(seg);
            if (seg.Kind == SegmentKind.Block && seg.Tokens.Count == 1 && seg.Tokens[0].IsName("raw"))
                pos = LexRaw(source, pos, segs, seg, ref line, ref lineStart);
        }

        ApplyWhitespaceControl(segs);
        return segs;
    }

    static int FindOpen(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    static void Advance(string s, int from, int to, ref int line, ref int lineStart)
    {
        for (int i = from; i < to; i++)
            if (s[i] == '\n') { line++; lineStart = i + 1; }
    }

    /// <summary>{% raw %}...{% endraw %}: everything between is text.</summary>
    static int LexRaw(string s, int pos, List<Segment> segs, Segment rawTag, ref int line, ref int lineStart)
    {
        for (int i = FindOpen(s, pos); i >= 0; i = FindOpen(s, i + 2))
        {
            if (s[i + 1] != '%') continue;
            int j = i + 2;
            char left = j < s.Length && s[j] is '-' or '+' ? s[j++] : '\0';
            while (j < s.Length && char.IsWhiteSpace(s[j])) j++;
            if (string.CompareOrdinal(s, j, "endraw", 0, 6) != 0) continue;
            j += 6;
            while (j < s.Length && char.IsWhiteSpace(s[j])) j++;
            char right = j < s.Length && s[j] is '-' or '+' ? s[j++] : '\0';
            if (string.CompareOrdinal(s, j, "%}", 0, 2) != 0) continue;
            segs.RemoveAt(segs.Count - 1);
            // The raw tag and the endraw tag act as empty blocks for whitespace control.
            segs.Add(new Segment(SegmentKind.Comment, rawTag.Line, rawTag.Column) { LeftModifier = rawTag.LeftModifier, RightModifier = rawTag.RightModifier });
            int textLine = line, textCol = pos - lineStart + 1;
            segs.Add(new Segment(SegmentKind.Text, textLine, textCol) { Text = s[pos..i], StartsLine = pos > 0 && s[pos - 1] == '\n' });
            Advance(s, pos, i, ref line, ref lineStart);
            segs.Add(new Segment(SegmentKind.Comment, line, i - lineStart + 1) { LeftModifier = left, RightModifier = right });
            Advance(s, i, j + 2, ref line, ref lineStart);
            return j + 2;
        }
        throw new ChatTemplateException("'raw' block is not closed ('endraw' missing)", rawTag.Line, rawTag.Column);
    }

    static Segment LexTag(string s, SegmentKind kind, int i, int tagLine, int tagCol, char left, ref int line, ref int lineStart, out int next)
    {
        var tokens = new List<Token>();
        int depth = 0;
        char closer = kind == SegmentKind.Block ? '%' : '}';
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i]))
            {
                if (s[i] == '\n') { line++; lineStart = i + 1; }
                i++;
            }
            if (i >= s.Length)
                throw new ChatTemplateException(kind == SegmentKind.Block ? "block tag is not closed ('%}' missing)" : "expression is not closed ('}}' missing)", tagLine, tagCol);
            int col = i - lineStart + 1;
            if (depth == 0)
            {
                char right = s[i] is '-' or '+' ? s[i] : '\0';
                int at = i + (right == '\0' ? 0 : 1);
                if (at + 1 < s.Length && s[at] == closer && s[at + 1] == '}' && (right != '+' || kind == SegmentKind.Block))
                {
                    var seg = new Segment(kind, tagLine, tagCol) { LeftModifier = left, RightModifier = right };
                    seg.Tokens.AddRange(tokens);
                    next = at + 2;
                    return seg;
                }
            }
            char c = s[i];
            if (char.IsAsciiLetter(c) || c == '_')
            {
                int st = i;
                while (i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] == '_')) i++;
                tokens.Add(new Token(TokenKind.Name, s[st..i], null, line, col));
            }
            else if (char.IsAsciiDigit(c))
            {
                tokens.Add(LexNumber(s, ref i, line, col));
            }
            else if (c is '\'' or '"')
            {
                int startLine = line;
                string str = LexString(s, ref i, ref line, ref lineStart, col);
                tokens.Add(new Token(TokenKind.String, str, str, startLine, col));
            }
            else
            {
                string? op = null;
                foreach (var o in Operators)
                    if (string.CompareOrdinal(s, i, o, 0, o.Length) == 0) { op = o; break; }
                if (op is null) throw new ChatTemplateException($"unexpected character '{c}'", line, col);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}")
                {
                    if (depth == 0) throw new ChatTemplateException($"unexpected '{op}'", line, col);
                    depth--;
                }
                tokens.Add(new Token(TokenKind.Operator, op, null, line, col));
                i += op.Length;
            }
        }
    }

    static Token LexNumber(string s, ref int i, int line, int col)
    {
        int st = i;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
        bool isFloat = false;
        if (i + 1 < s.Length && s[i] == '.' && char.IsAsciiDigit(s[i + 1]))
        {
            isFloat = true;
            i++;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
        }
        if (i < s.Length && s[i] is 'e' or 'E')
        {
            int j = i + 1;
            if (j < s.Length && s[j] is '+' or '-') j++;
            if (j < s.Length && char.IsAsciiDigit(s[j]))
            {
                isFloat = true;
                i = j;
                while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
            }
        }
        string text = s[st..i].Replace("_", "");
        return isFloat
            ? new Token(TokenKind.Float, text, double.Parse(text, CultureInfo.InvariantCulture), line, col)
            : new Token(TokenKind.Integer, text, long.Parse(text, CultureInfo.InvariantCulture), line, col);
    }

    /// <summary>A quoted string with Python's escapes (\n, \t, \\, \', \", \xhh, \uXXXX, \UXXXXXXXX, octal).</summary>
    static string LexString(string s, ref int i, ref int line, ref int lineStart, int col)
    {
        char q = s[i];
        int startLine = line;
        var sb = new StringBuilder();
        i++;
        while (true)
        {
            if (i >= s.Length) throw new ChatTemplateException("string literal is not closed", startLine, col);
            char c = s[i];
            if (c == q) { i++; return sb.ToString(); }
            if (c == '\n') { line++; lineStart = i + 1; }
            if (c != '\\' || i + 1 >= s.Length) { sb.Append(c); i++; continue; }
            char e = s[i + 1];
            i += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': line++; lineStart = i; break; // line continuation
                case 'x': sb.Append(Hex(s, ref i, 2, startLine, col)); break;
                case 'u': sb.Append(Hex(s, ref i, 4, startLine, col)); break;
                case 'U': sb.Append(Hex(s, ref i, 8, startLine, col)); break;
                case >= '0' and <= '7':
                    int v = e - '0';
                    for (int k = 0; k < 2 && i < s.Length && s[i] is >= '0' and <= '7'; k++, i++) v = v * 8 + (s[i] - '0');
                    sb.Append((char)v);
                    break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes as written
            }
        }
    }

    static string Hex(string s, ref int i, int n, int line, int col)
    {
        if (i + n > s.Length || !int.TryParse(s.AsSpan(i, n), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int v))
            throw new ChatTemplateException("bad escape in string literal", line, col);
        i += n;
        return char.ConvertFromUtf32(v);
    }

    /// <summary>
    /// '-' strips all whitespace on that side; without a modifier, block and comment tags also get trim_blocks
    /// (drop the first newline after the tag) and lstrip_blocks (drop spaces and tabs before the tag on its line).
    /// '+' turns the latter two off for that side.
    /// </summary>
    static void ApplyWhitespaceControl(List<Segment> segs)
    {
        for (int k = 0; k < segs.Count; k++)
        {
            var tag = segs[k];
            if (tag.Kind == SegmentKind.Text) continue;
            bool blockLike = tag.Kind != SegmentKind.Output;
            if (k > 0 && segs[k - 1] is { Kind: SegmentKind.Text } before)
            {
                if (tag.LeftModifier == '-') before.Text = before.Text.TrimEnd();
                else if (blockLike && tag.LeftModifier != '+')
                {
                    int lpos = before.Text.LastIndexOf('\n') + 1;
                    if ((lpos > 0 || before.StartsLine) && IsSpaceOrTab(before.Text.AsSpan(lpos)))
                        before.Text = before.Text[..lpos];
                }
            }
            if (k + 1 < segs.Count && segs[k + 1] is { Kind: SegmentKind.Text } after)
            {
                if (tag.RightModifier == '-')
                {
                    string t = after.Text.TrimStart();
                    int removed = after.Text.Length - t.Length;
                    if (removed > 0 && after.Text[removed - 1] == '\n') after.StartsLine = true;
                    after.Text = t;
                }
                else if (blockLike && tag.RightModifier != '+' && after.Text.StartsWith('\n'))
                {
                    after.Text = after.Text[1..];
                    after.StartsLine = true;
                }
            }
        }
    }

    static bool IsSpaceOrTab(ReadOnlySpan<char> s)
    {
        foreach (char c in s)
            if (c is not (' ' or '\t')) return false;
        return true;
    }
}
