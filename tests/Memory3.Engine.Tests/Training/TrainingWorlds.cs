using System.Text.RegularExpressions;
using Memory3.Engine.Tokenization;
using Memory3.Engine.Training;

namespace Memory3.Engine.Tests.Training;

/// <summary>
/// Small worlds made the way <see cref="TrainRecipe"/> makes them (same seed, same split of the name stream, a
/// tokenizer trained the way the recipe trains it), shared by the training tests and built once per test run.
/// </summary>
internal static partial class TrainingWorlds
{
    public const int Seed = 1;

    /// <summary>The recipe's options with worlds about a tenth of the shipped size, so a test run stays fast.</summary>
    public static readonly TrainRecipeOptions Options = new()
    {
        Seed = Seed,
        TrainWorld = new(People: 200, Cities: 25, Organisations: 25, Books: 30, Inventions: 20),
        HeldOutWorld = new(People: 40, Cities: 8, Organisations: 8, Books: 8, Inventions: 8),
    };

    private static readonly Lazy<(KnowledgeWorld Train, KnowledgeWorld HeldOut)> LazyWorlds = new(() => TrainRecipe.Worlds(Options));
    public static KnowledgeWorld Train => LazyWorlds.Value.Train;
    public static KnowledgeWorld HeldOut => LazyWorlds.Value.HeldOut;

    /// <summary>The tokenizer directory, trained as <see cref="TrainRecipe.Run"/> trains it (removed at process exit).</summary>
    private static readonly Lazy<string> LazyTokenizerDir = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "m3train-" + Guid.NewGuid().ToString("N")[..12]);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } };
        BpeTrainer.TrainByteLevel(TrainingData.TokenizerCorpus(Train, Seed).ToList(), Options.VocabSize, TrainRecipeOptions.SpecialTokens,
            dir, TrainingData.ChatTemplateText);
        return dir;
    });
    public static string TokenizerDir => LazyTokenizerDir.Value;

    private static readonly Lazy<ITokenizer> LazyTokenizer = new(() => TokenizerLoader.Load(TokenizerDir));
    public static ITokenizer Tokenizer => LazyTokenizer.Value;

    private static readonly Lazy<TrainingData> LazyData = new(() => new TrainingData(Train, Tokenizer, Seed));
    public static TrainingData Data => LazyData.Value;

    /// <summary>The held-out references exactly as the recipe ships them (<see cref="TrainRecipe.WriteHeldOut"/>).</summary>
    private static readonly Lazy<(string File, List<string> References)> LazyHeldOutFile = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "m3heldout-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            TrainRecipe.WriteHeldOut(Options, HeldOut, dir);
            var text = File.ReadAllText(Path.Combine(dir, TrainRecipe.HeldOutFile));
            return (text, HeldOut.References(Seed + 1).Select(r => r.Text).ToList());
        }
        finally { Directory.Delete(dir, recursive: true); }
    });
    public static string HeldOutFileText => LazyHeldOutFile.Value.File;
    public static IReadOnlyList<string> HeldOutReferences => LazyHeldOutFile.Value.References;

    /// <summary>
    /// The shipped recipe's own worlds and tokenizer (default <see cref="TrainRecipeOptions"/>): for properties that
    /// depend on the corpus size. Training the tokenizer on them takes about a second.
    /// </summary>
    public static class Recipe
    {
        public static readonly TrainRecipeOptions Options = new();
        private static readonly Lazy<(KnowledgeWorld Train, KnowledgeWorld HeldOut)> LazyWorlds = new(() => TrainRecipe.Worlds(Options));
        public static KnowledgeWorld Train => LazyWorlds.Value.Train;
        public static KnowledgeWorld HeldOut => LazyWorlds.Value.HeldOut;
        public static IReadOnlyList<string> Corpus => LazyCorpus.Value;
        private static readonly Lazy<List<string>> LazyCorpus = new(() => TrainingData.TokenizerCorpus(Train, Options.Seed).ToList());
        private static readonly Lazy<ITokenizer> LazyTokenizer = new(() =>
        {
            var dir = Path.Combine(Path.GetTempPath(), "m3recipe-" + Guid.NewGuid().ToString("N")[..12]);
            try
            {
                BpeTrainer.TrainByteLevel(Corpus, Options.VocabSize, TrainRecipeOptions.SpecialTokens, dir, TrainingData.ChatTemplateText);
                return TokenizerLoader.Load(dir);
            }
            finally { Directory.Delete(dir, recursive: true); }
        });
        public static ITokenizer Tokenizer => LazyTokenizer.Value;
        /// <summary>The held-out references as <see cref="TrainRecipe.WriteHeldOut"/> words them.</summary>
        public static IReadOnlyList<string> HeldOutReferences => HeldOut.References(Options.Seed + 1).Select(r => r.Text).ToList();
    }

    [GeneratedRegex(@"[\p{L}\p{N}]+", RegexOptions.CultureInvariant)]
    private static partial Regex WordRegex();

    /// <summary>The whole words of a text, as <see cref="KnowledgeWorld.ContainsWord"/> delimits them.</summary>
    public static IEnumerable<string> WordsOf(string text) => WordRegex().Matches(text).Select(m => m.Value);

    /// <summary>Every stage's samples for a few steps and indexes, decoded back to text with the special tokens kept.</summary>
    public static IEnumerable<(string Stage, int Step, int Index, TrainSample Sample)> Samples(TrainingData data, int steps = 12, int perStep = 8)
    {
        for (int step = 0; step < steps; step++)
            for (int i = 0; i < perStep; i++)
            {
                yield return ("copy", step, i, data.Copy(step, i));
                yield return ("warmup", step, i, data.WarmUp(step, i));
                yield return ("memory", step, i, data.WithMemory(step, i));
                yield return ("chat", step, i, data.Chat(step, i));
            }
    }
}
