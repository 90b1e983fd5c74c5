using System.Text;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Tokenization;

public class StreamingDetokenizerTests
{
    static readonly string[] Texts =
    [
        "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ done",
        "中文分词测试：我们今天去公园散步。日本語のテキストです。",
        "🤖🤖🤖 robots 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀋𠀍 ∑∫√",
        " leading space and 한국어",
        "Hello world",
        "a\n\n\n  b",
        "",
    ];

    public static IEnumerable<object[]> Cases =>
        from n in TokenizerFixtures.Names from i in Enumerable.Range(0, Texts.Length) from skip in new[] { true, false } select new object[] { n, i, skip };

    [Theory]
    [MemberData(nameof(Cases))]
    public void One_id_at_a_time_equals_decode_and_never_splits_a_character(string name, int index, bool skipSpecial)
    {
        var tok = TokenizerFixtures.Get(name);
        var ids = tok.Encode(Texts[index], addSpecialTokens: true);
        var stream = new StreamingDetokenizer(tok, skipSpecial);
        var sb = new StringBuilder();
        foreach (int id in ids)
        {
            var piece = stream.Push(id);
            Assert.DoesNotContain('\uFFFD', piece);
            sb.Append(piece);
        }
        sb.Append(stream.Flush());
        Assert.Equal(tok.Decode(ids, skipSpecial), sb.ToString());
    }

    [Fact]
    public void Multi_token_character_is_held_until_complete()
    {
        var tok = TokenizerFixtures.Get("mistral");
        int[] ids = [.. "😀"u8.ToArray().Select(b => tok.TokenToId($"<0x{b:X2}>")!.Value)];
        var stream = new StreamingDetokenizer(tok);
        Assert.Equal("", stream.Push(ids[0]));
        Assert.Equal("", stream.Push(ids[1]));
        Assert.Equal("", stream.Push(ids[2]));
        Assert.Equal("😀", stream.Push(ids[3]));
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void SentencePiece_leading_space_is_dropped_once_like_decode()
    {
        var tok = TokenizerFixtures.Get("llama2-sp");
        var ids = tok.Encode("Hello world", addSpecialTokens: true);
        var stream = new StreamingDetokenizer(tok);
        var text = string.Concat(ids.Select(stream.Push)) + stream.Flush();
        Assert.Equal("Hello world", text);
        Assert.Equal(text, tok.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Unfinished_character_flushes_as_replacement()
    {
        var tok = TokenizerFixtures.Get("mistral");
        var stream = new StreamingDetokenizer(tok);
        Assert.Equal("", stream.Push(tok.TokenToId("<0xF0>")!.Value));
        Assert.Equal("\uFFFD", stream.Flush());
    }
}
