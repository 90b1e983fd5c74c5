using System.ComponentModel;
using System.Text.Json;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Memory.Quantize;
using Memory3.Engine.Memory.Retrieve;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Memory3.Engine.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

/// <summary>
/// <c>memory3 eval facts</c>: held-out questions in five settings (memory bf16 / quantized, none, RAG, no sparsification),
/// plus time to first token and decode speed for memory against RAG. The bf16 bank is <c>--bank</c>, the quantized one
/// <c>--bank</c> + <c>-quantized</c>; each is built from the model's knowledge file when empty.
/// </summary>
public sealed class EvalFactsCommand : Command<EvalFactsCommand.Settings>
{
    public sealed class Settings : BankSettings
    {
        [CommandOption("--questions <N>"), Description("How many held-out questions (default 200)")]
        public int Questions { get; init; } = 200;

        [CommandOption("--facts <FILE>"), Description("Questions as JSON lines (default MODEL/eval/facts.jsonl)")]
        public string? Facts { get; init; }

        [CommandOption("--knowledge <FILE>"), Description("References to ingest into an empty bank (default MODEL/knowledge/heldout-world.md)")]
        public string? Knowledge { get; init; }

        [CommandOption("--sub-quantizers <N>"), Description("Bytes per quantized vector (default 8)")]
        public int SubQuantizers { get; init; } = 8;

        [CommandOption("--json <FILE>"), Description("Write the report as JSON")]
        public string? Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        string modelDir = s.Model!;
        var facts = s.Facts ?? Path.Combine(modelDir, TrainRecipe.FactsFile);
        var knowledge = s.Knowledge ?? Path.Combine(modelDir, TrainRecipe.HeldOutFile);
        if (!File.Exists(facts)) throw new FileNotFoundException($"no questions at {facts} (pass --facts FILE)");
        var tokenizer = TokenizerLoader.Load(modelDir);
        using var model = CausalLM.Load(modelDir, s.Options);
        // One embedder for every bank this command opens (each would otherwise load MiniLM again).
        using var embedder = new MiniLmEmbedder();
        var options = new MemoryBankOptions { Redis = s.Redis, Embedder = embedder };
        string quantDir = s.Bank!.TrimEnd('/', '\\') + "-quantized";
        Fill(s.Bank!, model, tokenizer, options, knowledge);
        var (refs, quantized) = Fill(quantDir, model, tokenizer, options, knowledge);
        if (!quantized)
        {
            var report = MemoryBank.TrainQuantizer(quantDir, model, tokenizer, new QuantizerOptions { SubQuantizers = s.SubQuantizers }, refs, 0, options);
            AnsiConsole.MarkupLineInterpolated($"[grey]quantized bank: {report.Description}, {report.BytesPerVector} B/vector ({report.CompressionRatio:F1}x)[/]");
        }
        using var bf16 = MemoryBank.Open(s.Bank!, model, tokenizer, options);
        using var quant = MemoryBank.Open(quantDir, model, tokenizer, options);
        using var training = TrainingModel.Load(modelDir);
        var questions = FactsEval.LoadQuestions(facts, s.Questions);
        var eval = new FactsEval(model, tokenizer);
        FactsReport result = null!;
        AnsiConsole.Status().Start($"answering {questions.Count} questions", ctx =>
            result = eval.Run(questions, bf16, quant, training, new SyncProgress<string>(m => ctx.Status(m))));

        var table = new Table().AddColumns("setting", "exact match", "correct");
        foreach (var r in result.Settings) table.AddRow(r.Name, $"{100 * r.ExactMatch:F1}%", $"{r.Correct}/{r.Total}");
        AnsiConsole.Write(table);
        if (result.AnswerLogProb.Count > 0)
            AnsiConsole.MarkupLineInterpolated($"mean log-probability of the right answer: {string.Join(", ", result.AnswerLogProb.Select(kv => $"{kv.Key} {kv.Value:F2}"))}");
        var timing = new Table().AddColumns("path", "questions", "prompt tokens", "TTFT p50 ms", "TTFT mean ms", "retrieval p50 ms", "TTFT − retrieval p50 ms", "decode tok/s");
        foreach (var t in result.Timing)
            timing.AddRow(t.Name, t.Questions.ToString(), $"{t.PromptTokensMean:F0}", $"{t.TtftP50Ms:F2}", $"{t.TtftMeanMs:F2}", $"{t.RetrievalP50Ms:F2}", $"{t.AfterRetrievalP50Ms:F2}", $"{t.DecodeTokensPerSecond:F0}");
        AnsiConsole.Write(timing);
        if (result.Timing.Count == 2 && result.Timing[1].TtftP50Ms > 0)
            AnsiConsole.MarkupLineInterpolated($"memory TTFT ÷ RAG TTFT (p50): {result.Timing[0].TtftP50Ms / result.Timing[1].TtftP50Ms:F2}; after retrieval: {result.Timing[0].AfterRetrievalP50Ms / Math.Max(1e-9, result.Timing[1].AfterRetrievalP50Ms):F2}");
        if (s.Json is { } json)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(json))!);
            File.WriteAllText(json, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        }
        return 0;
    }

    /// <summary>Ingests the knowledge file into the bank when it is empty; returns its references and whether it is quantized.</summary>
    private static (int References, bool Quantized) Fill(string dir, CausalLM model, ITokenizer tokenizer, MemoryBankOptions options, string knowledge)
    {
        using var bank = MemoryBank.Open(dir, model, tokenizer, options);
        int refs = bank.Stats().References;
        if (refs > 0) return (refs, bank.Quantizer is not null);
        if (!File.Exists(knowledge)) throw new FileNotFoundException($"the bank {dir} is empty and there is no knowledge file at {knowledge} (pass --knowledge FILE)");
        var r = bank.Ingest(new DocumentReader().Read([knowledge]), "default");
        AnsiConsole.MarkupLineInterpolated($"[grey]ingested {r.References} references into {dir} ({r.ReferencesPerSecond:F0} refs/s)[/]");
        return (r.References, false);
    }
}
