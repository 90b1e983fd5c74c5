namespace Memory3.Engine.Tokenization;

/// <summary>
/// The tokenizer that <c>memory3 init-random</c> ships with a random-weight model: a byte-level BPE trained on a small
/// English corpus embedded in this assembly (the project's own design notes), with a ChatML-style chat template.
/// It is written as a real <c>tokenizer.json</c>, so it loads by the same code path as real models.
/// </summary>
public static class RandomTokenizer
{
    public const string ChatTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    public static readonly string[] SpecialTokens = ["<|im_start|>", "<|im_end|>"];

    public readonly record struct Result(int Size, int BosId, int EosId);

    /// <summary>Trains at most <paramref name="maxVocab"/> tokens (fewer when the corpus runs out of pairs) into <paramref name="dir"/>.</summary>
    public static Result Write(string dir, int maxVocab)
    {
        var corpus = LoadCorpus();
        BpeTrainer.TrainByteLevel([corpus], Math.Min(maxVocab, 4096), SpecialTokens, dir, ChatTemplate);
        var t = TokenizerLoader.Load(dir);
        return new Result(t.VocabSize, t.BosTokenId ?? 0, t.EosTokenIds.Count > 0 ? t.EosTokenIds[0] : 0);
    }

    public static string LoadCorpus()
    {
        using var s = typeof(RandomTokenizer).Assembly.GetManifestResourceStream("Memory3.Engine.corpus.txt")
            ?? throw new InvalidOperationException("embedded corpus missing");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
