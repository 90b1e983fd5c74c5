using System.ComponentModel;
using System.Text.Json;
using Memory3.Engine.Inference;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Kernels;
using Memory3.Engine.Inference;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

public class BenchSettings : ModelSettings
{
    [CommandOption("--kernel-rows <N>"), Description("Linear layers with at most N rows use the bf16 SIMD kernel (0: always libtorch); default 8")]
    public int? KernelRows { get; init; }

    internal void Apply()
    {
        if (KernelRows is { } k) Memory3.Engine.Model.LinearDispatch.SmallRowThreshold = k;
    }

    [CommandOption("--json <FILE>"), Description("Also write the results as JSON")]
    public string? Json { get; init; }

    internal static void WriteJson(string? path, object result)
    {
        if (path is null) return;
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, JsonSerializer.Serialize(new
        {
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, date = DateTime.UtcNow.ToString("u") },
            result,
        }, new JsonSerializerOptions { WriteIndented = true }));
    }
}

public sealed class BenchDecodeCommand : Command<BenchDecodeCommand.Settings>
{
    public sealed class Settings : BenchSettings
    {
        [CommandOption("--batch <N>"), Description("Sequences decoded together; a comma list runs each (e.g. 1,8,32)")]
        public string Batch { get; init; } = "1";
        [CommandOption("--prompt-tokens <N>")] public int PromptTokens { get; init; } = 128;
        [CommandOption("--steps <N>")] public int Steps { get; init; } = 32;
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var batches = s.Batch.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(b => int.TryParse(b, out var v) && v > 0 ? v : throw new ArgumentException($"--batch '{b}' is not a positive integer")).ToArray();
        s.Apply();
        double bw = HardwareProbe.MeasureReadBandwidthGBs();   // before the model's 1 GB is resident and libtorch's threads exist
        using var model = CausalLM.Load(s.Model!, s.Options);
        var results = batches.Select(b => ModelBench.Decode(model, b, s.PromptTokens, s.Steps, bw)).ToList();
        var t = new Table().AddColumns("batch", "ms/step", "tok/s", "floor tok/s", "% of floor", "linear path");
        foreach (var r in results)
            t.AddRow($"{r.Batch}", $"{r.MsPerStepMedian:F1}", $"{r.TokensPerSecond:F1}", $"{r.FloorTokensPerSecond:F1}", $"{r.PercentOfFloor:F0}%", r.LinearPath);
        AnsiConsole.MarkupLineInterpolated($"decode: {s.Model} ({model.ParameterCount / 1e6:F0}M parameters, {model.WeightBytes / 1e9:F2} GB {s.DType}), {s.PromptTokens} tokens in, {s.Steps} steps; read bandwidth {bw:F1} GB/s (floor = weight bytes / bandwidth, per step)");
        AnsiConsole.Write(t);
        BenchSettings.WriteJson(s.Json, new { command = "bench decode", model = s.Model, dtype = s.DType, results });
        return 0;
    }
}

public sealed class BenchPrefillCommand : Command<BenchPrefillCommand.Settings>
{
    public sealed class Settings : BenchSettings
    {
        [CommandOption("--prompt-tokens <N>")] public int PromptTokens { get; init; } = 512;
        [CommandOption("--chunk <N>"), Description("Prefill chunk size (default: the whole prompt)")] public int Chunk { get; init; }
        [CommandOption("--batch <N>"), Description("Accepted for symmetry with decode; prefill runs one prompt")] public int Batch { get; init; } = 1;
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        double peak = HardwareProbe.MeasureBf16GemmGflops();
        using var model = CausalLM.Load(s.Model!, s.Options);
        var r = ModelBench.Prefill(model, s.PromptTokens, s.Chunk > 0 ? s.Chunk : s.PromptTokens, gemmPeakGflops: peak);
        var t = new Table().AddColumns("prompt", "chunk", "seconds", "tok/s", "GFLOP/s (2·params·tokens)", "GFLOP/s (matmuls run)", "bf16 GEMM peak", "% of peak");
        t.AddRow($"{r.PromptTokens}", $"{r.ChunkTokens}", $"{r.SecondsMedian:F2}", $"{r.TokensPerSecond:F1}", $"{r.GflopsByParameters:F0}", $"{r.GflopsByMatmuls:F0}", $"{r.Bf16GemmPeakGflops:F0}", $"{r.PercentOfPeakByParameters:F0}% / {r.PercentOfPeakByMatmuls:F0}%");
        AnsiConsole.MarkupLineInterpolated($"prefill: {s.Model} ({model.ParameterCount / 1e6:F0}M parameters, {s.DType})");
        AnsiConsole.Write(t);
        BenchSettings.WriteJson(s.Json, new { command = "bench prefill", model = s.Model, dtype = s.DType, result = r });
        return 0;
    }
}

public sealed class BenchLoadCommand : Command<BenchSettings>
{
    public override int Execute(CommandContext context, BenchSettings s, CancellationToken cancellationToken)
    {
        var r = ModelBench.Load(s.Model!, s.Options);
        var t = new Table().AddColumns("weights", "libtorch baseline RSS", "peak RSS", "(peak − baseline) / weights", "seconds");
        t.AddRow($"{r.WeightBytes / 1e6:F0} MB", $"{r.BaselineRssBytes / 1e6:F0} MB", $"{r.PeakRssBytes / 1e6:F0} MB", $"{r.PeakOverWeights:F3}", $"{r.Seconds:F1}");
        AnsiConsole.MarkupLineInterpolated($"load: {s.Model} as {s.DType}");
        AnsiConsole.Write(t);
        BenchSettings.WriteJson(s.Json, new { command = "bench load", model = s.Model, dtype = s.DType, result = r, r.PeakOverWeights });
        return 0;
    }
}

public sealed class BenchKernelsCommand : Command<BenchKernelsCommand.Settings>
{
    public sealed class Settings : CommandSettings { }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        KernelBench.Run(Console.Out);
        return 0;
    }
}

public sealed class BenchMemoryCommand : Command<BenchMemoryCommand.Settings>
{
    public sealed class Settings : BenchSettings
    {
        [CommandOption("--bank <DIR>")] public string? Bank { get; init; }
        [CommandOption("--batch <N>"), Description("Comma list of batch sizes")] public string Batch { get; init; } = "1,32";
        [CommandOption("--prompt-tokens <N>")] public int PromptTokens { get; init; } = 128;
        [CommandOption("--output-tokens <N>")] public int OutputTokens { get; init; } = 128;
        [CommandOption("--process-tier <ON>"), Description("on (default), off (the paper's worst case) or both")] public string ProcessTier { get; init; } = "both";
        [CommandOption("--redis <CONFIG>")] public string? Redis { get; init; }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        if (s.Bank is null) throw new ArgumentException("--bank DIR is required");
        s.Apply();
        var tokenizer = Memory3.Engine.Tokenization.TokenizerLoader.Load(s.Model!);
        using var model = CausalLM.Load(s.Model!, s.Options);
        var batches = s.Batch.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(b => int.TryParse(b, out var v) && v > 0 ? v : throw new ArgumentException($"--batch '{b}' is not a positive integer")).ToArray();
        var tiers = s.ProcessTier switch { "on" => new[] { true }, "off" => new[] { false }, _ => new[] { false, true } };
        var results = new List<MemoryDecodeBenchResult>();
        foreach (var on in tiers)
        {
            using var bank = Memory3.Engine.Memory.MemoryBank.Open(s.Bank, model, tokenizer, new Memory3.Engine.Memory.MemoryBankOptions { Redis = s.Redis, ProcessCacheBytes = on ? 512L << 20 : 0 });
            foreach (var b in batches) results.Add(MemoryBench.DecodeRatio(model, tokenizer, bank, b, s.PromptTokens, s.OutputTokens, on) with { ProcessTier = on });
        }
        var t = new Table().AddColumns("batch", "in-process tier", "retrievals/seq", "tok/s without memory", "tok/s with memory", "with ÷ without", "retrieval ms (total)");
        foreach (var r in results)
            t.AddRow($"{r.Batch}", r.ProcessTier ? "on" : "off", $"{r.RetrievalsPerSequence}", $"{r.TokensPerSecondWithout:F1}", $"{r.TokensPerSecondWith:F1}", $"{r.Ratio:F3}", $"{r.RetrievalMsTotal:F0}");
        AnsiConsole.MarkupLineInterpolated($"memory decode: {s.Model}, bank {s.Bank}, {s.PromptTokens} tokens in, {s.OutputTokens} out, decode phase timed (retrieval inline)");
        AnsiConsole.Write(t);
        BenchSettings.WriteJson(s.Json, new { command = "bench memory", model = s.Model, bank = s.Bank, dtype = s.DType, results });
        return 0;
    }
}

public sealed class BenchTiersCommand : Command<BenchTiersCommand.Settings>
{
    public sealed class Settings : BenchSettings
    {
        [CommandOption("--bank <DIR>")] public string? Bank { get; init; }
        [CommandOption("--redis <CONFIG>")] public string? Redis { get; init; }
        [CommandOption("--samples <N>")] public int Samples { get; init; } = 200;
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        if (s.Bank is null) throw new ArgumentException("--bank DIR is required");
        var tokenizer = Memory3.Engine.Tokenization.TokenizerLoader.Load(s.Model!);
        using var model = CausalLM.Load(s.Model!, s.Options);
        using var bank = Memory3.Engine.Memory.MemoryBank.Open(s.Bank, model, tokenizer, new Memory3.Engine.Memory.MemoryBankOptions { Redis = s.Redis });
        var lat = MemoryBench.TierLatencies(bank, 5, s.Samples);
        var st = bank.Stats();
        var t = new Table().AddColumns("tier", "samples", "p50 ms", "p99 ms");
        foreach (var l in lat) t.AddRow(l.Tier, $"{l.Samples}", $"{l.P50Ms:F3}", $"{l.P99Ms:F3}");
        AnsiConsole.MarkupLineInterpolated($"fetch of one chunk's 5 memories: {s.Bank} ({st.References} references, {st.PayloadMode}, {st.BytesPerMemoryPayload:N0} payload bytes per memory)");
        AnsiConsole.Write(t);
        BenchSettings.WriteJson(s.Json, new { command = "bench tiers", bank = s.Bank, stats = st, latencies = lat });
        return 0;
    }
}

public sealed class BenchQuantizerCommand : Command<BenchQuantizerCommand.Settings>
{
    public sealed class Settings : CommandSettings { }
    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        Memory3.Engine.Memory.Quantize.QuantizerBench.Run(Console.Out);
        return 0;
    }
}

public sealed class BenchRetrievalCommand : Command<BenchRetrievalCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--references <N>")] public int References { get; init; } = 10000;
        [CommandOption("--minilm"), Description("Also time the MiniLM embedder")] public bool MiniLm { get; init; }
    }
    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        Memory3.Engine.Memory.Retrieve.RetrievalBench.Run(Console.Out, s.References, s.MiniLm);
        return 0;
    }
}
