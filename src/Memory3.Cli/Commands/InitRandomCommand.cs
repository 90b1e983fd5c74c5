using System.ComponentModel;
using System.Diagnostics;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

public sealed class InitRandomCommand : Command<InitRandomCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--preset <PRESET>"), Description("tiny (~1M), small (~30M) or base (~0.55B parameters)")]
        public string Preset { get; init; } = "tiny";

        [CommandOption("--out <DIR>"), Description("Output directory")]
        public string? Out { get; init; }

        [CommandOption("--arch <ARCH>"), Description("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or Memory3ForCausalLM (default)")]
        public string Architecture { get; init; } = "Memory3ForCausalLM";

        [CommandOption("--dtype <DTYPE>"), Description("Stored dtype: bf16 (default), f32 or f16")]
        public string DType { get; init; } = "bf16";

        [CommandOption("--seed <SEED>")]
        public ulong Seed { get; init; }

        [CommandOption("--shards <N>"), Description("Split the weights over N safetensors files with an index")]
        public int Shards { get; init; } = 1;

        public override Spectre.Console.ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Out)) return Spectre.Console.ValidationResult.Error("--out DIR is required");
            if (Shards < 1) return Spectre.Console.ValidationResult.Error("--shards must be at least 1");
            return Spectre.Console.ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var dtype = s.DType.ToLowerInvariant() switch
        {
            "bf16" or "bfloat16" => StDType.BF16, "f32" or "float32" => StDType.F32, "f16" or "float16" => StDType.F16,
            _ => throw new ArgumentException($"--dtype '{s.DType}' is not one of bf16, f32, f16"),
        };
        var config = RandomModel.Preset(s.Preset, s.Architecture) with { TorchDtype = dtype == StDType.F32 ? "float32" : dtype == StDType.F16 ? "float16" : "bfloat16" };
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(s.Out!);
        var tokenizerVocab = RandomTokenizer.Write(s.Out!, config.VocabSize);
        config = config with { BosTokenId = tokenizerVocab.BosId, EosTokenIds = [tokenizerVocab.EosId] };
        RandomModel.Write(s.Out!, config, dtype, s.Seed, s.Shards);
        long parameters = RandomModel.TensorShapes(config).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        AnsiConsole.MarkupLineInterpolated($"Wrote [bold]{s.Preset}[/] {config.Architecture}: {parameters / 1e6:F1}M parameters, {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, vocab {config.VocabSize} (tokenizer {tokenizerVocab.Size}), {dtype} to {s.Out} in {sw.Elapsed.TotalSeconds:F1} s");
        return 0;
    }
}
