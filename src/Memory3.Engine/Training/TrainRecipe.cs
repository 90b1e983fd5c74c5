using System.Text.Json;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using static TorchSharp.torch;

namespace Memory3.Engine.Training;

/// <summary>The whole recipe of issue 5, every number in one place (the defaults are what ships as <c>models/memory3-tiny</c>).</summary>
public sealed record TrainRecipeOptions
{
    public int Seed { get; init; } = 1;
    public KnowledgeWorld.Size TrainWorld { get; init; } = new(People: 2000, Cities: 250, Organisations: 250, Books: 300, Inventions: 200);
    public KnowledgeWorld.Size HeldOutWorld { get; init; } = new(People: 120, Cities: 20, Organisations: 20, Books: 20, Inventions: 20);
    public int VocabSize { get; init; } = 1024;
    public int Hidden { get; init; } = 128;
    public int Intermediate { get; init; } = 512;
    public int Layers { get; init; } = 6;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    /// <summary>All six: with the paper's half (three), memory reads did not form (docs/training.md).</summary>
    public int MemoryLayers { get; init; } = 6;
    /// <summary>Tokens kept per head: 16, so a one-fact reference (8–16 tokens) keeps its value (docs/training.md).</summary>
    public int MemoryTokensPerHead { get; init; } = 16;
    /// <summary>Stage-2 steps that read one to five memories rather than five (curriculum).</summary>
    public int FewMemoriesSteps { get; init; } = 300;
    /// <summary>Probes of each kind (a list to copy, a RAG question, a memory question) scored at every checkpoint by greedy exact match.</summary>
    public int Probes { get; init; } = 64;
    public StageOptions Copy { get; init; } = new("copy", Steps: 1200, BatchSize: 32, Lr: 3e-3, MinLr: 1e-3, WarmupSteps: 50);
    public StageOptions WarmUp { get; init; } = new("warmup", Steps: 500, BatchSize: 32, Lr: 2e-3, MinLr: 5e-4, WarmupSteps: 30);
    public StageOptions WithMemory { get; init; } = new("memory", Steps: 3400, BatchSize: 32, Lr: 2e-3, MinLr: 2e-4, WarmupSteps: 50);
    public StageOptions Chat { get; init; } = new("chat", Steps: 300, BatchSize: 32, Lr: 5e-4, MinLr: 5e-5, WarmupSteps: 20);

    public static readonly string[] SpecialTokens = ["<|im_start|>", "<|im_end|>"];
}

/// <summary>
/// <c>memory3 train</c>: world → tokenizer → stage 1 (copying drills, then the warm-up without memory) → stage 2 (continual training with
/// memory) → stage 3 (chat) → the shipped model directory. Each step leaves its result under the work directory and
/// is skipped when that result exists, and each stage resumes from its last checkpoint: an interrupted run continues
/// where it stopped.
/// </summary>
public static class TrainRecipe
{
    public const string HeldOutFile = "knowledge/heldout-world.md";
    public const string FactsFile = "eval/facts.jsonl";

    public static (KnowledgeWorld Train, KnowledgeWorld HeldOut) Worlds(TrainRecipeOptions o)
    {
        var w = KnowledgeWorld.Generate(o.Seed, ("train", o.TrainWorld), ("heldout", o.HeldOutWorld));
        return (w[0], w[1]);
    }

    public static ModelConfig Config(TrainRecipeOptions o, ITokenizer tokenizer)
    {
        var c = RandomModel.Make("Memory3ForCausalLM", tokenizer.VocabSize, o.Hidden, o.Intermediate, o.Layers, o.Heads, o.KvHeads);
        var imEnd = tokenizer.Encode("<|im_end|>", addSpecialTokens: false);
        return c with
        {
            BosTokenId = tokenizer.BosTokenId ?? 0,
            EosTokenIds = [.. tokenizer.EosTokenIds, .. imEnd.Length == 1 ? imEnd : []],
            MaxPositionEmbeddings = 2048,
            Memory = c.Memory! with { MemoryLayers = o.MemoryLayers, MemoryTokensPerHead = o.MemoryTokensPerHead },
        };
    }

    public static void Run(TrainRecipeOptions o, string workDir, string outDir, Action<string> info, Action<StepReport>? report = null)
    {
        Directory.CreateDirectory(workDir);
        set_num_threads(Environment.ProcessorCount);
        var (train, heldOut) = Worlds(o);
        info($"world: {train.Entities.Count} training entities, {heldOut.Entities.Count} held-out entities (seed {o.Seed})");

        string tokDir = Path.Combine(workDir, "tokenizer");
        if (!File.Exists(Path.Combine(tokDir, "tokenizer.json")))
        {
            var corpus = TrainingData.TokenizerCorpus(train, o.Seed).ToList();
            BpeTrainer.TrainByteLevel(corpus, o.VocabSize, TrainRecipeOptions.SpecialTokens, tokDir, TrainingData.ChatTemplateText);
            info($"tokenizer: byte-level BPE trained on {corpus.Count} training texts");
        }
        var tokenizer = TokenizerLoader.Load(tokDir);
        var config = Config(o, tokenizer);
        var data = new TrainingData(train, tokenizer, o.Seed, config.Memory!.MemoriesPerChunk, config.Memory.RetrievalInterval) { FewMemoriesSteps = o.FewMemoriesSteps };
        var prefix = tokenizer.Encode(config.Memory.ReferencePrefix, addSpecialTokens: false);

        using var log = new StreamWriter(Path.Combine(workDir, "loss.csv"), append: true);
        using var probeLog = new StreamWriter(Path.Combine(workDir, "probes.csv"), append: true) { AutoFlush = true };
        var copyProbes = data.Probes(o.Probes, "copy");
        var ragProbes = data.Probes(o.Probes, "rag");
        var memoryProbes = data.Probes(o.Probes, "memory");
        string previous = "";
        foreach (var (stage, sample) in new (StageOptions, Func<int, int, TrainSample>)[] { (o.Copy, data.Copy), (o.WarmUp, data.WarmUp), (o.WithMemory, data.WithMemory), (o.Chat, data.Chat) })
        {
            string stageDir = Path.Combine(workDir, stage.Name);
            string done = Path.Combine(stageDir, "final");
            if (File.Exists(Path.Combine(done, "model.safetensors"))) { previous = done; info($"{stage.Name}: done (skipped)"); continue; }
            using var model = previous == "" ? TrainingModel.Create(config, o.Seed) : TrainingModel.Load(previous);
            if (previous == "") info($"model: {model.ParameterCount / 1e6:F2}M parameters, {config.NumHiddenLayers} layers, {config.Memory.MemoryLayers} read memory");
            manual_seed(o.Seed);
            var trainer = new Trainer(model, data.References, prefix);
            void Probe(int step)
            {
                if (o.Probes == 0) return;
                double copy = trainer.ExactMatch(copyProbes), rag = trainer.ExactMatch(ragProbes), memory = trainer.ExactMatch(memoryProbes);
                probeLog.WriteLine($"{stage.Name},{step},{copy:F4},{rag:F4},{memory:F4}");
                info($"{stage.Name} step {step}: probes exact match: copy {copy:P0}, RAG {rag:P0}, memory {memory:P0}");
            }
            trainer.Run(stage, sample, Path.Combine(stageDir, "checkpoint"), report, log, Probe);
            model.Save(done, StDType.F32);
            previous = done;
        }

        Ship(o, previous, tokDir, outDir, data, heldOut);
        info($"shipped {outDir}");
    }

    /// <summary>Writes the served model: bf16 weights, config, tokenizer, the held-out knowledge base and the evaluation questions.</summary>
    public static void Ship(TrainRecipeOptions o, string finalDir, string tokDir, string outDir, TrainingData data, KnowledgeWorld heldOut)
    {
        Directory.CreateDirectory(outDir);
        using (var model = TrainingModel.Load(finalDir)) model.Save(outDir, StDType.BF16);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(tokDir, f), Path.Combine(outDir, f), overwrite: true);
        WriteHeldOut(o, heldOut, outDir);
    }

    /// <summary>The held-out world's references (one paragraph each: the demo knowledge base) and its questions.</summary>
    public static void WriteHeldOut(TrainRecipeOptions o, KnowledgeWorld heldOut, string outDir)
    {
        Directory.CreateDirectory(Path.Combine(outDir, "knowledge"));
        Directory.CreateDirectory(Path.Combine(outDir, "eval"));
        var refs = heldOut.References(o.Seed + 1);
        File.WriteAllText(Path.Combine(outDir, HeldOutFile),
            string.Join("\n\n", refs.Select(r => r.Text)) + "\n");
        var questions = heldOut.SampleQuestions(heldOut.Entities.Sum(e => e.Facts.Count), o.Seed + 2);
        File.WriteAllLines(Path.Combine(outDir, FactsFile), questions.Select(q => JsonSerializer.Serialize(new
        {
            question = q.Question, answer = q.Answer, entity = q.EntityName, attribute = q.Attribute,
        })));
    }
}
