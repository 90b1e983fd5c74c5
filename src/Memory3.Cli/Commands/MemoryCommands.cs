using System.ComponentModel;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Memory.Quantize;
using Memory3.Engine.Memory.Store;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

public class BankSettings : ModelSettings
{
    [CommandOption("--bank <DIR>"), Description("Memory bank directory (created if missing)")]
    public string? Bank { get; init; }

    [CommandOption("--redis <CONFIG>"), Description("Redis hot tier (StackExchange.Redis configuration, e.g. 127.0.0.1:6379)")]
    public string? Redis { get; init; }

    [CommandOption("--writer-id <ID>"), Description("Write as this writer (segments seg-ID-N.m3s, lock writer-ID.lock, index folder index-ID), so that " +
        "several writers ingest into one bank at once, e.g. the indexes of a Kubernetes Indexed Job (--writer-id $JOB_COMPLETION_INDEX). Default: the bank's default writer")]
    public string? WriterId { get; init; }

    [CommandOption("--read-only"), Description("Open the bank read-only: no lock, nothing written (search or inspect a bank that a server or Job is writing, or a read-only mount)")]
    public bool ReadOnly { get; init; }

    public override ValidationResult Validate()
    {
        var b = base.Validate();
        if (!b.Successful) return b;
        if (DiskShardOptions.CheckWriterId(WriterId) is { } bad) return ValidationResult.Error($"--writer-id: {bad}");
        if (ReadOnly && !string.IsNullOrEmpty(WriterId)) return ValidationResult.Error("--read-only and --writer-id exclude each other: a read-only opener writes nothing");
        return string.IsNullOrWhiteSpace(Bank) ? ValidationResult.Error("--bank DIR is required") : ValidationResult.Success();
    }

    internal MemoryBankOptions BankOptions() => new() { Redis = Redis, WriterId = string.IsNullOrEmpty(WriterId) ? null : WriterId, ReadOnly = ReadOnly };

    internal (CausalLM Model, ITokenizer Tokenizer, MemoryBank Bank) Open()
    {
        var tokenizer = TokenizerLoader.Load(Model!);
        var model = CausalLM.Load(Model!, Options);
        try { return (model, tokenizer, MemoryBank.Open(Bank!, model, tokenizer, BankOptions())); }
        catch { model.Dispose(); throw; }
    }
}

public sealed class IngestCommand : Command<IngestCommand.Settings>
{
    public sealed class Settings : BankSettings
    {
        [CommandArgument(0, "<FILES>"), Description("Text or markdown files, or folders of them")]
        public string[] Files { get; init; } = [];

        [CommandOption("--namespace <NS>")]
        public string Namespace { get; init; } = "default";
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        if (s.ReadOnly) throw new ArgumentException("--read-only: ingest writes the bank; leave it out (and give --writer-id when other writers write the same bank)");
        var (model, _, bank) = s.Open();
        using var __ = model;
        using var ___ = bank;
        var docs = new DocumentReader().Read(s.Files).ToList();
        IngestResult? result = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("ingesting", maxValue: Math.Max(1, docs.Count));
                result = bank.Ingest(docs, s.Namespace, new SyncProgress<IngestProgress>(p => { task.Value = p.Documents + p.Failed; task.Description = $"{p.References} references, {p.ReferencesPerSecond:F1} refs/s, {p.Skipped} skipped"; }), cancellationToken);
                task.Value = task.MaxValue;
            });
        foreach (var (source, error) in result!.Errors) Console.Error.WriteLine($"memory3: skipped {source}: {error}");
        AnsiConsole.MarkupLineInterpolated($"Ingested {result.References} references from {result.Documents} documents into '{s.Namespace}' ({result.Skipped} already stored, {result.Errors.Count} files failed) in {result.Seconds:F1} s: {result.ReferencesPerSecond:F1} references/s");
        return result.Documents == 0 && result.Errors.Count > 0 ? 2 : 0;
    }
}

/// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

public sealed class SearchCommand : Command<SearchCommand.Settings>
{
    public sealed class Settings : BankSettings
    {
        [CommandArgument(0, "<QUERY>")] public string Query { get; init; } = "";
        [CommandOption("--namespace <NS>")] public string[] Namespaces { get; init; } = [];
        [CommandOption("--top <K>")] public int Top { get; init; } = 5;
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var (model, _, bank) = s.Open();
        using var __ = model;
        using var ___ = bank;
        var hits = bank.Search(s.Query, s.Namespaces.Length > 0 ? s.Namespaces : null, s.Top);
        var t = new Table().AddColumns("#", "score", "dense", "bm25", "namespace", "id", "text");
        int i = 0;
        foreach (var h in hits)
            t.AddRow($"{++i}", $"{h.Score:F4}", h.DenseScore is { } d ? $"{d:F3}" : "", h.LexicalScore is { } l ? $"{l:F2}" : "", Markup.Escape(h.Namespace), h.Id[..12], Markup.Escape(h.Text.Length > 100 ? h.Text[..100] + "…" : h.Text));
        AnsiConsole.Write(t);
        return 0;
    }
}

public sealed class BankStatsCommand : Command<BankStatsCommand.Settings>
{
    public sealed class Settings : BankSettings
    {
        [CommandOption("--sample <N>"), Description("Memories sampled for the quantization error")] public int Sample { get; init; } = 64;
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var (model, _, bank) = s.Open();
        using var __ = model;
        using var ___ = bank;
        var st = bank.Stats();
        var t = new Table().AddColumns("references", "bytes on disk", "segments", "payload", "bytes per memory (payload)", "on disk per reference", "fingerprint");
        t.AddRow($"{st.References}", $"{st.BytesOnDisk:N0}", $"{st.Segments}", st.PayloadMode + (st.QuantizerDescription is { } q ? $" ({Markup.Escape(q)})" : ""), $"{st.BytesPerMemoryPayload:N0}",
            st.References > 0 ? $"{st.BytesOnDisk / st.References:N0}" : "-", st.Fingerprint);
        AnsiConsole.Write(t);
        var report = Path.Combine(s.Bank!, MemoryBank.QuantizerReportFile);
        if (File.Exists(report)) { AnsiConsole.MarkupLine("Quantization error per layer, measured on held-out memories when the quantizer was trained:"); Console.Out.Write(File.ReadAllText(report)); }
        else AnsiConsole.MarkupLine("Quantization: none (bf16 payloads). Train one with [bold]memory3 quantizer train[/].");
        return 0;
    }
}

public sealed class QuantizerTrainCommand : Command<QuantizerTrainCommand.Settings>
{
    public sealed class Settings : BankSettings
    {
        [CommandOption("--samples <N>"), Description("Memories sampled uniformly from the bank (10% are held out for the error report)")] public int Samples { get; init; } = 2048;
        [CommandOption("--sub-quantizers <M>"), Description("Bytes per vector (one 8-bit code per sub-vector)")] public int SubQuantizers { get; init; } = 16;
        [CommandOption("--seed <S>")] public int Seed { get; init; }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        if (s.ReadOnly || !string.IsNullOrEmpty(s.WriterId))
            throw new ArgumentException("quantizer train converts every writer's segments in place: run it with no --read-only or --writer-id, while no server or Job has the bank open");
        var tokenizer = TokenizerLoader.Load(s.Model!);
        using var model = CausalLM.Load(s.Model!, s.Options);
        var report = MemoryBank.TrainQuantizer(s.Bank!, model, tokenizer, new QuantizerOptions { SubQuantizers = s.SubQuantizers }, s.Samples, s.Seed,
            new MemoryBankOptions { Redis = s.Redis }, new SyncProgress<string>(m => AnsiConsole.MarkupLineInterpolated($"[grey]{m}[/]")));
        report.WriteTo(Console.Out);
        return 0;
    }
}
