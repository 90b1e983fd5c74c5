using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Tokenization;

/// <summary>Our ids and text against the reference JavaScript tokenizers, for four real vocabularies.</summary>
public class TokenizerParityTests
{
    public static IEnumerable<object[]> Cases => TokenizerFixtures.AllCases();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_matches_reference(string name, int index)
    {
        var tok = TokenizerFixtures.Get(name);
        var r = TokenizerFixtures.Reference(name)[index];
        Assert.Equal(r.Ids, tok.Encode(r.Text, addSpecialTokens: false));
        Assert.Equal(r.IdsWithSpecial, tok.Encode(r.Text, addSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_matches_reference(string name, int index)
    {
        var tok = TokenizerFixtures.Get(name);
        var r = TokenizerFixtures.Reference(name)[index];
        // llama3's tokenizer_config asks for clean_up_tokenization_spaces, which the JS decode applies (" ?" -> "?");
        // we never apply it (a lossy rewrite that streaming could not reproduce), so there decode must give the text back.
        bool cleanedUp = name == "llama3" && r.Decoded != r.Text;
        Assert.Equal(cleanedUp ? r.Text : r.Decoded, tok.Decode(r.Ids));
        if (!cleanedUp) Assert.Equal(r.DecodedSkipSpecial, tok.Decode(r.Ids, skipSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_of_encode_is_lossless(string name, int index)
    {
        var tok = TokenizerFixtures.Get(name);
        var r = TokenizerFixtures.Reference(name)[index];
        // Where the reference itself is not lossless (Qwen3's NFC, SentencePiece's space after a special token) the
        // decode test above already pins the output; llama3's only difference is the clean-up we do not apply.
        if (r.Decoded != r.Text && name != "llama3") return;
        Assert.Equal(r.Text, tok.Decode(tok.Encode(r.Text, addSpecialTokens: false)));
    }

    [Fact]
    public void Qwen3_specials_and_template()
    {
        var t = TokenizerFixtures.Get("qwen3");
        Assert.Equal(151669, t.VocabSize);
        Assert.Null(t.BosTokenId);
        Assert.False(t.AddBosToken);
        Assert.Equal([151645], t.EosTokenIds);
        Assert.Contains("<|im_start|>", t.ChatTemplate);
        Assert.Equal(151644, t.TokenToId("<|im_start|>"));
        Assert.True(t.IsSpecial(151644));
        Assert.False(t.IsSpecial(151667)); // <think> is an added, non-special token
        Assert.Equal("<think>", t.IdToToken(151667));
        Assert.Equal(" "u8.ToArray(), t.TokenBytes(t.TokenToId("Ġ")!.Value));
        Assert.Equal([151644, 872], t.Encode("<|im_start|>user"));
    }

    [Fact]
    public void Llama3_specials()
    {
        var t = TokenizerFixtures.Get("llama3");
        Assert.Equal(128256, t.VocabSize);
        Assert.Equal(128000, t.BosTokenId);
        Assert.Equal([128001], t.EosTokenIds);
        Assert.False(t.AddBosToken); // this tokenizer.json's post_processor is ByteLevel, and the config has no add_bos_token
        Assert.NotNull(t.ChatTemplate);
        Assert.Equal("<|begin_of_text|>", t.IdToToken(128000));
        Assert.Equal([128000, 9906], t.Encode("<|begin_of_text|>Hello"));
    }

    [Fact]
    public void Mistral_specials_and_byte_fallback()
    {
        var t = TokenizerFixtures.Get("mistral");
        Assert.Equal(32000, t.VocabSize);
        Assert.Equal(1, t.BosTokenId);
        Assert.Equal([2], t.EosTokenIds);
        Assert.True(t.AddBosToken);
        Assert.Null(t.ChatTemplate);
        Assert.Equal(new byte[] { 0xF0 }, t.TokenBytes(t.TokenToId("<0xF0>")!.Value));
        Assert.Equal(" Hello"u8.ToArray(), t.TokenBytes(t.TokenToId("▁Hello")!.Value));
        Assert.True(t.IsSpecial(1));
        Assert.False(t.IsSpecial(100));
    }

    [Fact]
    public void SentencePiece_model_specials()
    {
        var t = TokenizerFixtures.Get("llama2-sp");
        Assert.Equal(32000, t.VocabSize);
        Assert.Equal(1, t.BosTokenId);
        Assert.Equal([2], t.EosTokenIds);
        Assert.True(t.AddBosToken);
        Assert.Equal("<s>", t.IdToToken(1));
        Assert.True(t.IsSpecial(2));
        // Special token strings in the text are recognised (as Hugging Face's LlamaTokenizer does; raw sentencepiece does not).
        Assert.Equal([1, 1, 15043, 2], t.Encode("<s>Hello</s>"));
        Assert.Equal("Hello", t.Decode([1, 1, 15043, 2], skipSpecialTokens: true));
        Assert.Equal(new byte[] { 0xE4 }, t.TokenBytes(t.TokenToId("<0xE4>")!.Value));
    }
}
