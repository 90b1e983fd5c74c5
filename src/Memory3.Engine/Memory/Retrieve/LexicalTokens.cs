using System.Globalization;
using System.Text;

namespace Memory3.Engine.Memory.Retrieve;

/// <summary>
/// The word tokenizer shared by BM25 and the overlap filter: NFKC, lower-cased (invariant), maximal runs of letters,
/// digits and combining marks. No stemming and no stop list: BM25's IDF already makes "the" worthless, and keeping
/// every token exact is what makes names and numbers ("1987", "Grieg") count.
/// </summary>
public static class LexicalTokens
{
    public static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        Scan(text, (t, _) => tokens.Add(t));
        return tokens;
    }

    /// <summary>
    /// The key terms of a query: tokens with a digit (years, amounts, codes) and name-like tokens (an upper-case letter
    /// after the first character, "NASA", "McAdam", or a capitalised word that does not start a sentence, "… met Grieg").
    /// Lower-cased, distinct, in order.
    /// </summary>
    public static List<string> KeyTerms(string text)
    {
        var keys = new List<string>();
        Scan(text, (t, nameLike) => { if ((nameLike || IsNumeric(t)) && !keys.Contains(t)) keys.Add(t); });
        return keys;
    }

    /// <summary>Lucene's English stop set (StandardAnalyzer's default), left out of the BM25 index and queries.</summary>
    public static bool IsStopWord(string token) => StopWords.Contains(token);

    static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
        "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
    };

    static void Scan(string text, Action<string, bool> emit)
    {
        if (string.IsNullOrEmpty(text)) return;
        string s;
        try { s = text.IsNormalized(NormalizationForm.FormKC) ? text : text.Normalize(NormalizationForm.FormKC); }
        catch (ArgumentException) { s = text; } // lone surrogates
        var sb = new StringBuilder();
        bool sentenceStart = true, firstUpper = false, innerUpper = false;
        void Flush()
        {
            if (sb.Length == 0) return;
            emit(sb.ToString(), innerUpper || (firstUpper && !sentenceStart));
            sb.Clear();
            sentenceStart = false;
        }
        foreach (var ch in s)
        {
            var cat = CharUnicodeInfo.GetUnicodeCategory(ch);
            bool word = char.IsLetterOrDigit(ch) || cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;
            if (word)
            {
                if (sb.Length == 0) { firstUpper = char.IsUpper(ch); innerUpper = false; }
                else if (char.IsUpper(ch)) innerUpper = true;
                sb.Append(char.ToLowerInvariant(ch));
            }
            else
            {
                Flush();
                if (ch is '.' or '!' or '?' or '\n' or ':' or '"' or '\u201C') sentenceStart = true;
            }
        }
        Flush();
    }

    /// <summary>True for tokens that carry a digit (years, amounts, codes).</summary>
    public static bool IsNumeric(string token)
    {
        foreach (var ch in token) if (char.IsDigit(ch)) return true;
        return false;
    }
}

/// <summary>
/// The paper's overlap (eq. 6): the longest common subsequence between the query text t and a reference r, divided
/// by |r|, where the part of t the match may span is limited to 2|r| tokens (so a long t cannot inflate the score).
/// Computed on <see cref="LexicalTokens"/> words.
/// </summary>
public static class LcsOverlap
{
    public static double Compute(string query, string reference) =>
        Compute(LexicalTokens.Tokenize(query), LexicalTokens.Tokenize(reference));

    public static double Compute(IReadOnlyList<string> t, IReadOnlyList<string> r)
    {
        int m = r.Count;
        if (m == 0 || t.Count == 0) return 0;
        int span = 2 * m;
        if (t.Count <= span) return Lcs(t, 0, t.Count, r) / (double)m;
        // Max over windows of t of length 2|r|: every match spanning ≤ 2|r| tokens of t lies inside one such window.
        int best = 0;
        for (int s = 0; s + span <= t.Count && best < m; s++)
            best = Math.Max(best, Lcs(t, s, span, r));
        return best / (double)m;
    }

    static int Lcs(IReadOnlyList<string> a, int start, int len, IReadOnlyList<string> b)
    {
        int m = b.Count;
        var prev = new int[m + 1];
        var cur = new int[m + 1];
        for (int i = 0; i < len; i++)
        {
            var ai = a[start + i];
            for (int j = 1; j <= m; j++)
                cur[j] = string.Equals(ai, b[j - 1], StringComparison.Ordinal) ? prev[j - 1] + 1 : Math.Max(prev[j], cur[j - 1]);
            (prev, cur) = (cur, prev);
        }
        return prev[m];
    }
}
