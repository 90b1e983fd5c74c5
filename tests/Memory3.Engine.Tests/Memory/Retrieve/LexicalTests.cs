using Memory3.Engine.Memory.Retrieve;

namespace Memory3.Engine.Tests.Memory.Retrieve;

public class RetrievalLexicalTests
{
    [Fact]
    public void Tokenizer_keeps_numbers_and_names_lower_cased()
    {
        Assert.Equal(["in", "1987", "grieg", "wrote", "op", "16", "café"], LexicalTokens.Tokenize("In 1987, Grieg wrote Op.16 — Café!"));
        Assert.Empty(LexicalTokens.Tokenize("  ,.;  "));
    }

    [Fact]
    public void Key_terms_are_numbers_and_names_not_sentence_starts()
    {
        Assert.Equal(["grieg", "bergen", "1887", "nasa", "mcadam"],
            LexicalTokens.KeyTerms("In the year Grieg left Bergen, 1887. Then NASA and McAdam arrived. The end"));
        Assert.Empty(LexicalTokens.KeyTerms("Why does the sea rise and fall twice a day?"));
    }

    [Fact]
    public void Overlap_is_lcs_over_reference_length()
    {
        Assert.Equal(1.0, LcsOverlap.Compute("the cat sat on the mat", "the cat sat on the mat"));
        // Reference fully contained, in order, inside a longer query: 1.
        Assert.Equal(1.0, LcsOverlap.Compute("yesterday the cat quietly sat on the mat again", "the cat sat on the mat"));
        // Half the reference's words appear in order.
        // "dog sat on" of 8 reference words.
        Assert.Equal(0.375, LcsOverlap.Compute("a dog sat on a rug", "the dog sat on the bed near windows"), 6);
        Assert.Equal(0.0, LcsOverlap.Compute("alpha beta", "gamma delta"));
        Assert.Equal(0.0, LcsOverlap.Compute("", "gamma delta"));
    }

    [Fact]
    public void Overlap_limits_the_matched_span_to_twice_the_reference()
    {
        // r = "a b"; t has "a" then 10 fillers then "b": the LCS over the whole t would be 2, but no window of
        // 2|r| = 4 tokens holds both, so the overlap is 1/2.
        var t = "a " + string.Join(' ', Enumerable.Repeat("x", 10)) + " b";
        Assert.Equal(0.5, LcsOverlap.Compute(t, "a b"));
        Assert.Equal(1.0, LcsOverlap.Compute("x a x b x x x x x x", "a b"));
    }
}
