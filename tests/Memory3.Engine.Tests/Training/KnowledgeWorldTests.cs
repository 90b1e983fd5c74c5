using Memory3.Engine.Training;

namespace Memory3.Engine.Tests.Training;

public class KnowledgeWorldTests
{
    private static string Flatten(KnowledgeWorld w) =>
        string.Join("\n", w.Entities.Select(e => $"{e.Kind}|{e.Name}|" + string.Join("|", e.Facts.Select(f => f.Attribute + "=" + f.Value))));

    [Fact]
    public void SameSeedGivesIdenticalWorldsReferencesAndCorpus()
    {
        var a = TrainRecipe.Worlds(TrainingWorlds.Options);
        var b = TrainRecipe.Worlds(TrainingWorlds.Options);
        Assert.Equal(Flatten(a.Train), Flatten(b.Train));
        Assert.Equal(Flatten(a.HeldOut), Flatten(b.HeldOut));
        Assert.Equal(a.Train.References(7).Select(r => r.Text), b.Train.References(7).Select(r => r.Text));
        Assert.Equal(a.HeldOut.References(8).Select(r => r.Text), b.HeldOut.References(8).Select(r => r.Text));
        Assert.Equal(TrainingData.TokenizerCorpus(a.Train, 3), TrainingData.TokenizerCorpus(b.Train, 3));
        Assert.Equal(a.HeldOut.SampleQuestions(50, 4), b.HeldOut.SampleQuestions(50, 4));
        Assert.Equal(TrainingWorlds.Options.TrainWorld.Total, a.Train.Entities.Count);
        Assert.Equal(TrainingWorlds.Options.HeldOutWorld.Total, a.HeldOut.Entities.Count);
    }

    [Fact]
    public void DifferentSeedsGiveDifferentWorlds()
    {
        var one = TrainRecipe.Worlds(TrainingWorlds.Options);
        var two = TrainRecipe.Worlds(TrainingWorlds.Options with { Seed = 2 });
        Assert.NotEqual(Flatten(one.Train), Flatten(two.Train));
        Assert.NotEqual(Flatten(one.HeldOut), Flatten(two.HeldOut));
        // Not a reshuffle of the same names: most names are new.
        var names = one.Train.Entities.Select(e => e.Name).ToHashSet();
        Assert.True(two.Train.Entities.Count(e => names.Contains(e.Name)) < two.Train.Entities.Count / 10);
        // The same world worded with another seed reads differently.
        Assert.NotEqual(one.Train.References(1).Select(r => r.Text), one.Train.References(2).Select(r => r.Text));
    }

    [Fact]
    public void NamesAreUniqueAndTheWorldsShareNoWord()
    {
        var (train, heldOut) = (TrainingWorlds.Train, TrainingWorlds.HeldOut);
        Assert.Equal(train.Entities.Count, train.Entities.Select(e => e.Name).Distinct().Count());
        Assert.Equal(heldOut.Entities.Count, heldOut.Entities.Select(e => e.Name).Distinct().Count());
        Assert.Empty(train.Words().Intersect(heldOut.Words(), StringComparer.OrdinalIgnoreCase));
        var trainYears = Years(train).ToHashSet();
        Assert.DoesNotContain(Years(heldOut), trainYears.Contains);
    }

    private static IEnumerable<string> Years(KnowledgeWorld w) =>
        w.Entities.SelectMany(e => e.Facts).Select(f => f.Value).Where(v => v.All(char.IsAsciiDigit)).Distinct();

    /// <summary>Every training text of the small world: its references, the tokenizer corpus, and decoded samples of all three stages.</summary>
    private static List<(string Where, string Text)> TrainingTexts()
    {
        var texts = new List<(string, string)>();
        texts.AddRange(TrainingWorlds.Train.References(TrainingWorlds.Seed).Select(r => ("train reference", r.Text)));
        texts.AddRange(TrainingData.TokenizerCorpus(TrainingWorlds.Train, TrainingWorlds.Seed).Select(t => ("tokenizer corpus", t)));
        var data = TrainingWorlds.Data;
        texts.AddRange(data.ReferenceTexts.Select(t => ("TrainingData reference", t)));
        foreach (var (stage, step, index, s) in TrainingWorlds.Samples(data))
            texts.Add(($"{stage} sample ({step}, {index})", TrainingWorlds.Tokenizer.Decode(s.Tokens)));
        return texts;
    }

    private static void AssertNeverOccurs(KnowledgeWorld heldOut, IEnumerable<(string Where, string Text)> texts)
    {
        var heldOutWords = heldOut.Words().ToHashSet(StringComparer.Ordinal);
        var heldOutYears = Years(heldOut).ToHashSet(StringComparer.Ordinal);
        Assert.NotEmpty(heldOutWords);
        Assert.NotEmpty(heldOutYears);
        var leaks = new List<string>();
        foreach (var (where, text) in texts)
            foreach (var w in TrainingWorlds.WordsOf(text))
                if (heldOutWords.Contains(w) || heldOutYears.Contains(w))
                    leaks.Add($"'{w}' in {where}: {text}");
        Assert.True(leaks.Count == 0, $"{leaks.Count} held-out words or years in training text:\n" + string.Join("\n", leaks.Take(20)));
    }

    [Fact]
    public void HeldOutNamesValuesAndYearsNeverOccurInAnyTrainingText()
    {
        var texts = TrainingTexts();
        Assert.Contains(texts, t => t.Where.StartsWith("memory sample"));
        AssertNeverOccurs(TrainingWorlds.HeldOut, texts);
        // The word splitter agrees with KnowledgeWorld.ContainsWord on what a whole word is.
        var e = TrainingWorlds.Train.Entities[0];
        var reference = TrainingWorlds.Train.References(TrainingWorlds.Seed)[0].Text;
        foreach (var word in e.Name.Split(' '))
        {
            Assert.True(KnowledgeWorld.ContainsWord(reference, word));
            Assert.Contains(word, TrainingWorlds.WordsOf(reference));
            Assert.False(KnowledgeWorld.ContainsWord(reference, word[..^1]));
            Assert.DoesNotContain(word[..^1], TrainingWorlds.WordsOf(reference));
        }
    }

    [Fact]
    public void HeldOutWordsNeverOccurInTheShippedRecipesTrainingText()
    {
        // The recipe's own seed and world sizes (text only: no tokenizer needed).
        var o = new TrainRecipeOptions();
        var (train, heldOut) = TrainRecipe.Worlds(o);
        var texts = train.References(o.Seed).Select(r => ("train reference", r.Text))
            .Concat(TrainingData.TokenizerCorpus(train, o.Seed).Select(t => ("tokenizer corpus", t)));
        AssertNeverOccurs(heldOut, texts);
    }

    [Fact]
    public void NoGeneratedNameIsAWordOfTheTemplates()
    {
        // The templates' words as rendered text shows them: the words of a world's texts that are not its own.
        var o = new TrainRecipeOptions();
        var one = TrainRecipe.Worlds(o).Train;
        var own = one.Words().ToHashSet(StringComparer.OrdinalIgnoreCase);
        var template = TrainingData.TokenizerCorpus(one, o.Seed).SelectMany(TrainingWorlds.WordsOf)
            .Where(w => !own.Contains(w) && !w.All(char.IsAsciiDigit)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.Contains("birthplace", template);
        Assert.Contains("headquarters", template);
        // Seeds whose name stream spelled "Note", "Dates", "Take", "Makes", "Story", "Make", "These", "Novel" or "Here"
        // before template words were reserved: a held-out name that is a template word would occur in training text.
        foreach (var seed in new[] { 10, 43, 57, 95, 100, 152, 190, 201, 218, 269 })
        {
            var (train, heldOut) = TrainRecipe.Worlds(o with { Seed = seed });
            var clashes = train.Words().Concat(heldOut.Words()).Where(template.Contains).ToList();
            Assert.True(clashes.Count == 0, $"seed {seed}: names that are template words: {string.Join(", ", clashes)}");
        }
    }

    [Fact]
    public void EachReferenceStatesOneFactOfOneEntity()
    {
        var world = TrainingWorlds.Train;
        var refs = world.References(TrainingWorlds.Seed);
        Assert.Equal(world.Entities.Sum(e => e.Facts.Count), refs.Count);
        foreach (var e in world.Entities)
        {
            var own = refs.Where(r => r.Entity == e).Select(r => r.Text).ToList();
            Assert.Equal(e.Facts.Count, own.Count);
            Assert.All(own, t => Assert.True(KnowledgeWorld.ContainsWord(t, e.Name), $"'{t}' does not name {e.Name}"));
            // Every fact is stated by exactly one of the entity's references (a value shared by two facts, e.g. a
            // city that is both birthplace and setting, still sits in one reference each).
            foreach (var f in e.Facts) Assert.Contains(own, t => KnowledgeWorld.ContainsWord(t, f.Value));
            Assert.All(own, t => Assert.Single(t.Split(". ", StringSplitOptions.RemoveEmptyEntries)));
        }
    }

    [Fact]
    public void EveryReferenceFitsIn128TokensAndTheShippedFileIsOneReferencePerParagraph()
    {
        var all = TrainingWorlds.Data.ReferenceTexts.Select(t => ("train", TrainingWorlds.Tokenizer, t))
            .Concat(TrainingWorlds.HeldOutReferences.Select(t => ("held-out", TrainingWorlds.Tokenizer, t)))
            // The shipped recipe's worlds and tokenizer too.
            .Concat(TrainingWorlds.Recipe.Train.References(TrainingWorlds.Recipe.Options.Seed).Select(r => ("recipe train", TrainingWorlds.Recipe.Tokenizer, r.Text)))
            .Concat(TrainingWorlds.Recipe.HeldOutReferences.Select(t => ("recipe held-out", TrainingWorlds.Recipe.Tokenizer, t)));
        int longest = 0;
        foreach (var (world, tok, text) in all)
        {
            int n = tok.Encode(text, addSpecialTokens: false).Length;
            longest = Math.Max(longest, n);
            Assert.True(n is > 0 and <= 128, $"{world} reference of {n} tokens: {text}");
            Assert.DoesNotContain("\n", text);
        }
        Assert.True(longest > 8, $"longest reference {longest} tokens");
        var paragraphs = TrainingWorlds.HeldOutFileText.TrimEnd('\n').Split("\n\n");
        Assert.Equal(TrainingWorlds.HeldOutReferences, paragraphs);
    }
}
