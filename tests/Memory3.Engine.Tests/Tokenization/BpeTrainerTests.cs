using System.Diagnostics;
using System.Text;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Tokenization;

public sealed class BpeTrainerTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "memory3-bpe-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A deterministic synthetic corpus of about <paramref name="bytes"/> bytes: English-like words, numbers, CJK, emoji.</summary>
    internal static List<string> Corpus(int bytes, int seed = 1)
    {
        string[] syllables = ["the", "an", "mem", "or", "y", "to", "ken", "ize", "ing", "re", "trie", "val", "in", "fer", "ence", "qu", "ick", "brown", "fox", "中", "文", "日本", "語", "😀", "é", "ñ", "ü"];
        var rng = new Random(seed);
        var docs = new List<string>();
        var sb = new StringBuilder();
        int total = 0;
        while (total < bytes)
        {
            sb.Clear();
            for (int w = 0; w < 60; w++)
            {
                int n = 1 + rng.Next(3);
                if (rng.Next(10) == 0) sb.Append(rng.Next(100000));
                else for (int k = 0; k < n; k++) sb.Append(syllables[rng.Next(syllables.Length)]);
                sb.Append(rng.Next(12) switch { 0 => ", ", 1 => ". ", 2 => "\n", 3 => "'s ", _ => " " });
            }
            var doc = sb.ToString();
            docs.Add(doc);
            total += Encoding.UTF8.GetByteCount(doc);
        }
        return docs;
    }

    [Fact]
    public void Trained_tokenizer_loads_and_round_trips()
    {
        var corpus = Corpus(100_000);
        var sw = Stopwatch.StartNew();
        BpeTrainer.TrainByteLevel(corpus, 512, ["<|im_start|>", "<|im_end|>"], _dir, chatTemplate: "{{ messages }}");
        sw.Stop();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"training took {sw.Elapsed}");

        var tok = TokenizerLoader.Load(_dir);
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(tok.TokenToId("<s>"), tok.BosTokenId);
        Assert.Equal([tok.TokenToId("</s>")!.Value], tok.EosTokenIds);
        Assert.True(tok.AddBosToken);
        Assert.Equal("{{ messages }}", tok.ChatTemplate);
        Assert.True(tok.IsSpecial(tok.TokenToId("<|im_end|>")!.Value));

        foreach (var text in new[] { corpus[0], "the memory tokenizer", "unseen: Ωμέγα 🚀 ☃ 𝄞 \t\r\n  x", "中文 and 日本語 😀😀", "" })
        {
            var ids = tok.Encode(text, addSpecialTokens: false);
            Assert.Equal(text, tok.Decode(ids));
        }
        // Training compresses: the corpus needs far fewer tokens than bytes.
        Assert.True(tok.Encode(corpus[0], false).Length < Encoding.UTF8.GetByteCount(corpus[0]) / 2);

        var chat = tok.Encode("<|im_start|>user\nhi<|im_end|>");
        Assert.Equal(tok.BosTokenId, chat[0]);
        Assert.Equal(tok.TokenToId("<|im_start|>"), chat[1]);
        Assert.Equal(tok.TokenToId("<|im_end|>"), chat[^1]);
        Assert.Equal("user\nhi", tok.Decode(chat, skipSpecialTokens: true));
    }

    [Fact]
    public void Training_is_deterministic()
    {
        var corpus = Corpus(20_000);
        BpeTrainer.TrainByteLevel(corpus, 300, [], Path.Combine(_dir, "a"));
        BpeTrainer.TrainByteLevel(corpus, 300, [], Path.Combine(_dir, "b"));
        Assert.Equal(File.ReadAllText(Path.Combine(_dir, "a", "tokenizer.json")), File.ReadAllText(Path.Combine(_dir, "b", "tokenizer.json")));
    }

    [Fact]
    public void Too_small_vocab_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.TrainByteLevel(["x"], 257, [], _dir));
    }
}

public sealed class BpeTrainerScaleTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "memory3-bpe8k-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Eight_k_vocab_on_a_megabyte_trains_quickly()
    {
        var corpus = BpeTrainerTests.Corpus(1_000_000, seed: 7);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        BpeTrainer.TrainByteLevel(corpus, 8192, ["<|im_start|>", "<|im_end|>"], _dir);
        var trained = sw.Elapsed;
        var tok = TokenizerLoader.Load(_dir);
        Assert.True(trained < TimeSpan.FromSeconds(45), $"training took {trained}");
        Assert.Equal(corpus[3], tok.Decode(tok.Encode(corpus[3], false)));
    }
}
