using Memory3.Engine.Tokenization;
using Memory3.Engine.Training;

namespace Memory3.Engine.Tests.Training;

/// <summary>The byte-level BPE the recipe trains on the training world, loaded through the real tokenizer.json path.</summary>
public class TrainingTokenizerTests
{
    [Fact]
    public void TrainedTokenizerJsonLoadsWithTheChatTemplateAndSpecialTokens()
    {
        Assert.True(File.Exists(Path.Combine(TrainingWorlds.TokenizerDir, "tokenizer.json")));
        var tok = TokenizerLoader.Load(TrainingWorlds.TokenizerDir);
        Assert.Equal(TrainingWorlds.Options.VocabSize, tok.VocabSize);
        Assert.Equal(TrainingData.ChatTemplateText, tok.ChatTemplate);
        Assert.NotNull(ChatFormatters.For(tok));
        foreach (var special in TrainRecipeOptions.SpecialTokens.Append("<s>").Append("</s>"))
        {
            var ids = tok.Encode(special, addSpecialTokens: false);
            Assert.True(ids.Length == 1, $"{special} is {ids.Length} tokens");
            Assert.True(tok.IsSpecial(ids[0]));
            Assert.Equal(special, tok.IdToToken(ids[0]));
        }
        // Inside text too: the chat template's markers are single tokens wherever they stand.
        var chat = tok.Encode("<|im_start|>user\nWhere?<|im_end|>\n", addSpecialTokens: false);
        Assert.Equal(tok.TokenToId("<|im_start|>"), chat[0]);
        Assert.Contains(tok.TokenToId("<|im_end|>")!.Value, chat);
    }

    [Fact]
    public void EncodeDecodeRoundTripsTrainingAndHeldOutText()
    {
        var tok = TrainingWorlds.Tokenizer;
        var texts = TrainingData.TokenizerCorpus(TrainingWorlds.Train, TrainingWorlds.Seed).Take(300)
            .Concat(TrainingWorlds.HeldOutReferences)
            .Concat(TrainingWorlds.HeldOut.SampleQuestions(100, 5).Select(q => q.Question + " " + q.Answer))
            .Append(TrainingWorlds.HeldOutFileText)
            .Append(TrainingWorlds.Data.ChatPrompt(TrainingData.RagSystem(TrainingWorlds.HeldOutReferences.Take(3)), "Where was Zorblax born?"))
            .Append("unseen: Ωμέγα 🚀 tab\tand\r\nnewlines  ");
        foreach (var text in texts)
        {
            var ids = tok.Encode(text, addSpecialTokens: false);
            Assert.Equal(text, tok.Decode(ids));
        }
    }

    [Fact]
    public void EveryTokenOfTheHeldOutWorldOccursInTheTrainingCorpus()
    {
        // The model must copy held-out names and values out of memory token by token: a token id it never saw in
        // training has an untrained embedding and output row, and cannot be produced. BPE keeps intermediate merges
        // that the full corpus never ends on (e.g. "the" inside " the"); a new word can stop on one. This holds for
        // the shipped recipe's corpus; on a world a tenth of its size it does not (8 such tokens): so the recipe's
        // own worlds are checked here.
        var tok = TrainingWorlds.Recipe.Tokenizer;
        var seen = new HashSet<int>();
        foreach (var text in TrainingWorlds.Recipe.Corpus)
            seen.UnionWith(tok.Encode(text, addSpecialTokens: false));
        var heldOut = TrainingWorlds.Recipe.HeldOut;
        var missing = new SortedDictionary<int, List<string>>();
        var heldOutTexts = TrainingWorlds.Recipe.HeldOutReferences
            .Concat(heldOut.SampleQuestions(heldOut.Entities.Sum(e => e.Facts.Count), TrainingWorlds.Recipe.Options.Seed + 2)
                .SelectMany(q => new[] { q.Question, " " + q.Answer }));   // answers begin with a space (TrainingData.ChatSample)
        foreach (var text in heldOutTexts)
            foreach (var id in tok.Encode(text, addSpecialTokens: false))
                if (!seen.Contains(id))
                {
                    if (!missing.TryGetValue(id, out var where)) missing[id] = where = [];
                    if (where.Count < 3) where.Add(text);
                }
        Assert.True(missing.Count == 0,
            $"{missing.Count} token ids of held-out text never occur in the tokenized training corpus:\n" +
            string.Join("\n", missing.Select(m => $"{m.Key} '{tok.Decode([m.Key])}' in: {string.Join(" | ", m.Value)}")));
    }
}
