using System.ComponentModel;
using System.Diagnostics;
using Memory3.Engine.Inference;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

public class ModelSettings : CommandSettings
{
    [CommandOption("--model <DIR>"), Description("Model directory (config.json, *.safetensors, tokenizer.json)")]
    public string? Model { get; init; }

    [CommandOption("--dtype <DTYPE>"), Description("bfloat16 (default) or float32")]
    public string DType { get; init; } = "bfloat16";

    [CommandOption("--device <DEVICE>"), Description("cpu (default) or cuda")]
    public string Device { get; init; } = "cpu";

    public ModelOptions Options => new() { DType = DType, Device = Device };

    public override Spectre.Console.ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Model) ? Spectre.Console.ValidationResult.Error("--model DIR is required") : Spectre.Console.ValidationResult.Success();
}

public sealed class GenerateCommand : Command<GenerateCommand.Settings>
{
    public sealed class Settings : ModelSettings
    {
        [CommandOption("--prompt <TEXT>")] public string? Prompt { get; init; }
        [CommandOption("--max-tokens <N>")] public int MaxTokens { get; init; } = 64;
        [CommandOption("--temperature <T>")] public float Temperature { get; init; } = 0.7f;
        [CommandOption("--top-p <P>")] public float TopP { get; init; } = 1f;
        [CommandOption("--top-k <K>")] public int TopK { get; init; } = -1;
        [CommandOption("--min-p <P>")] public float MinP { get; init; }
        [CommandOption("--repetition-penalty <R>")] public float RepetitionPenalty { get; init; } = 1f;
        [CommandOption("--seed <S>")] public ulong? Seed { get; init; }
        [CommandOption("--stop <TEXT>"), Description("A stop string (repeatable)")] public string[] Stop { get; init; } = [];
        [CommandOption("--stats"), Description("Print timing to stderr at the end")] public bool Stats { get; init; }
        [CommandOption("--bank <DIR>"), Description("Read explicit memory from this bank (the model must be Memory3ForCausalLM)")] public string? Bank { get; init; }
        [CommandOption("--namespace <NS>"), Description("Namespaces to retrieve from (repeatable; default all)")] public string[] Namespaces { get; init; } = [];
        [CommandOption("--redis <CONFIG>"), Description("Redis hot tier for the bank")] public string? Redis { get; init; }

        public override Spectre.Console.ValidationResult Validate()
        {
            var b = base.Validate();
            if (!b.Successful) return b;
            return Prompt is null ? Spectre.Console.ValidationResult.Error("--prompt TEXT is required") : Spectre.Console.ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var tokenizer = TokenizerLoader.Load(s.Model!);
        using var model = CausalLM.Load(s.Model!, s.Options);
        var p = new SamplingParams
        {
            Temperature = s.Temperature, TopP = s.TopP, TopK = s.TopK, MinP = s.MinP, RepetitionPenalty = s.RepetitionPenalty,
            Seed = s.Seed, MaxTokens = s.MaxTokens, Stop = s.Stop,
        };
        using var bank = s.Bank is null ? null : Memory3.Engine.Memory.MemoryBank.Open(s.Bank, model, tokenizer, new Memory3.Engine.Memory.MemoryBankOptions { Redis = s.Redis });
        var gen = new Generator(model, tokenizer)
        {
            Memory = bank is null ? null : new MemoryReadOptions(bank, s.Namespaces.Length > 0 ? s.Namespaces : null),
        };
        var prompt = gen.EncodePrompt(s.Prompt!);
        var sw = Stopwatch.StartNew();
        double firstMs = 0;
        int n = 0;
        var stdout = Console.Out;
        FinishReason? finish = null;
        foreach (var e in gen.Generate(prompt, p))
        {
            if (n++ == 0) firstMs = sw.Elapsed.TotalMilliseconds;
            stdout.Write(e.Text);
            stdout.Flush();
            finish = e.Finish;
            if (cancellationToken.IsCancellationRequested) break;
        }
        stdout.WriteLine();
        if (bank is not null)
        {
            stdout.WriteLine();
            stdout.WriteLine("References attached to each window:");
            foreach (var w in gen.Windows)
            {
                stdout.WriteLine($"  {w.Phase} tokens {w.Start}..{w.End - 1}: {(w.Citations.Count == 0 ? "(none)" : "")}");
                foreach (var c in w.Citations)
                    stdout.WriteLine($"    [{c.Id[..12]}] ({c.Namespace}, score {c.Score:F3}) {(c.Text.Length > 90 ? c.Text[..90] + "…" : c.Text)}");
            }
        }
        if (s.Stats)
            Console.Error.WriteLine($"prompt {prompt.Length} tokens, generated {n}, first token {firstMs:F0} ms, decode {(n > 1 ? (n - 1) / ((sw.Elapsed.TotalMilliseconds - firstMs) / 1000) : 0):F1} tok/s, finish {finish?.ToString().ToLowerInvariant()}");
        return 0;
    }
}
