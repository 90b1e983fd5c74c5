using System.Text;
using System.Text.RegularExpressions;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Memory.Encode;

/// <summary>
/// Splits text into references of at most <c>reference_max_tokens</c> tokens, at sentence boundaries where possible:
/// sentences are packed greedily within a paragraph (a blank line always ends a reference: a paragraph is the
/// author's own unit, and a memory that mixes two of them is retrieved for either and answers neither well); a sentence longer than the limit is cut at word boundaries, and a word longer than
/// the limit at token boundaries (decoded back to text without breaking a character).
/// </summary>
public sealed partial class ReferenceChunker(ITokenizer tokenizer, int maxTokens)
{
    [GeneratedRegex(@"(?<=[.!?。！？])\s+", RegexOptions.CultureInvariant)]
    private static partial Regex SentenceBreak();

    [GeneratedRegex(@"\n\s*\n", RegexOptions.CultureInvariant)]
    private static partial Regex ParagraphBreak();

    [GeneratedRegex(@"(?<=\s)(?=\S)", RegexOptions.CultureInvariant)]
    private static partial Regex WordBreak();

    private int Count(string s) => tokenizer.Encode(s, addSpecialTokens: false).Length;

    public List<string> Split(string text)
    {
        var result = new List<string>();
        foreach (var paragraph in ParagraphBreak().Split(text)) SplitParagraph(paragraph, result);
        return result;
    }

    private void SplitParagraph(string text, List<string> result)
    {
        var current = new StringBuilder();
        foreach (var raw in SentenceBreak().Split(text))
        {
            var sentence = raw.Trim();
            if (sentence.Length == 0) continue;
            foreach (var piece in FitSentence(sentence))
            {
                var candidate = current.Length == 0 ? piece : current + " " + piece;
                if (current.Length > 0 && Count(candidate) > maxTokens)
                {
                    result.Add(current.ToString());
                    current.Clear().Append(piece);
                }
                else current.Clear().Append(candidate);
            }
        }
        if (current.Length > 0) result.Add(current.ToString());
    }

    private IEnumerable<string> FitSentence(string sentence)
    {
        if (Count(sentence) <= maxTokens) { yield return sentence; yield break; }
        var current = new StringBuilder();
        foreach (var word in WordBreak().Split(sentence))
        {
            var w = word.Trim();
            if (w.Length == 0) continue;
            if (Count(w) > maxTokens)
            {
                if (current.Length > 0) { yield return current.ToString(); current.Clear(); }
                foreach (var part in SplitTokens(w)) yield return part;
                continue;
            }
            var candidate = current.Length == 0 ? w : current + " " + w;
            if (current.Length > 0 && Count(candidate) > maxTokens) { yield return current.ToString(); current.Clear().Append(w); }
            else current.Clear().Append(candidate);
        }
        if (current.Length > 0) yield return current.ToString();
    }

    private IEnumerable<string> SplitTokens(string word)
    {
        var ids = tokenizer.Encode(word, addSpecialTokens: false);
        int start = 0;
        while (start < ids.Length)
        {
            int n = Math.Min(maxTokens, ids.Length - start);
            // Back off until the piece decodes to whole characters and re-encodes within the limit.
            while (n > 1)
            {
                var text = tokenizer.Decode(ids.AsSpan(start, n));
                if (!text.Contains('\uFFFD') && Count(text) <= maxTokens) break;
                n--;
            }
            yield return tokenizer.Decode(ids.AsSpan(start, n));
            start += n;
        }
    }
}
