using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Tokenization;

public sealed class TokenizerLoaderTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("memory3-tokload-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(string file, string content)
    {
        var p = Path.Combine(_dir, file);
        File.WriteAllText(p, content);
        return p;
    }

    const string TinyJson = """
        {"added_tokens":[{"id":3,"content":"<eos>","special":true}],
         "normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
         "decoder":{"type":"ByteLevel"},
         "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}
        """;

    [Fact]
    public void Missing_directory_is_named()
    {
        var missing = Path.Combine(_dir, "nope");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(missing));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void Missing_tokenizer_files_are_named()
    {
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("tokenizer.model", e.Message);
    }

    [Fact]
    public void Malformed_tokenizer_json_is_named()
    {
        var p = Write("tokenizer.json", "{\"model\": {");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
        Assert.Contains("malformed JSON", e.Message);
    }

    [Fact]
    public void Malformed_tokenizer_config_is_named()
    {
        Write("tokenizer.json", TinyJson);
        var p = Write("tokenizer_config.json", "{\"bos_token\": ");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
    }

    [Fact]
    public void Malformed_generation_config_is_named()
    {
        Write("tokenizer.json", TinyJson);
        var p = Write("generation_config.json", "{\"eos_token_id\": \"x\"}");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
    }

    [Fact]
    public void Unknown_eos_token_is_named()
    {
        Write("tokenizer.json", TinyJson);
        var p = Write("tokenizer_config.json", "{\"eos_token\": \"</nope>\"}");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
        Assert.Contains("</nope>", e.Message);
    }

    [Fact]
    public void Unsupported_model_type_is_named()
    {
        var p = Write("tokenizer.json", """{"model":{"type":"Unigram","vocab":[]}}""");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
        Assert.Contains("Unigram", e.Message);
    }

    [Fact]
    public void Bad_merge_is_named()
    {
        var p = Write("tokenizer.json", """{"model":{"type":"BPE","byte_fallback":true,"vocab":{"a":0},"merges":["a zz"]}}""");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
    }

    [Fact]
    public void Garbage_sentencepiece_model_is_named()
    {
        var p = Path.Combine(_dir, "tokenizer.model");
        File.WriteAllBytes(p, [1, 2, 3, 250, 251, 252, 253]);
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.Load(_dir));
        Assert.StartsWith(p, e.Message);
    }

    [Fact]
    public void Tiny_tokenizer_json_with_generation_config()
    {
        Write("tokenizer.json", TinyJson);
        Write("tokenizer_config.json", """{"eos_token": {"content": "<eos>"}, "chat_template": [{"name": "default", "template": "T"}]}""");
        Write("generation_config.json", """{"eos_token_id": [3, 2]}""");
        var t = TokenizerLoader.Load(_dir);
        Assert.Equal(4, t.VocabSize);
        Assert.Equal([3, 2], t.EosTokenIds);
        Assert.Equal("T", t.ChatTemplate);
        Assert.Null(t.BosTokenId);
        Assert.False(t.AddBosToken);
        Assert.Equal([2, 0, 3], t.Encode("aba<eos>"));
        Assert.Equal("aba", t.Decode([2, 0, 3], skipSpecialTokens: true));
    }
}
