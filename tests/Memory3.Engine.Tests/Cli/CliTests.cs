using System.Diagnostics;

namespace Memory3.Engine.Tests.Cli;

/// <summary>The real `memory3` program, run as a process the way a user runs it.</summary>
public class CliTests
{
    internal static (int Code, string Out, string Err) Memory3(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "memory3.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("memory3 " + string.Join(' ', args)); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void InitRandomThenGenerateStreamsText()
    {
        using var tmp = new TempDir();
        var dir = Path.Combine(tmp.Path, "tiny");
        var init = Memory3("init-random", "--preset", "tiny", "--out", dir);
        Assert.Equal(0, init.Code);
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(dir, f)), f);
        var a = Memory3("generate", "--model", dir, "--prompt", "The memory", "--max-tokens", "12", "--seed", "3");
        var b = Memory3("generate", "--model", dir, "--prompt", "The memory", "--max-tokens", "12", "--seed", "3");
        Assert.Equal(0, a.Code);
        Assert.True(a.Out.Trim().Length > 0, "generated text expected");
        Assert.Equal(a.Out, b.Out);
    }

    [Fact]
    public void InitRandomPresetsHaveTheAdvertisedSizes()
    {
        // tiny ≈ 1M, small ≈ 30M, base ≈ 0.5B parameters (counted from the configs, without writing base).
        long Count(string preset) => global::Memory3.Engine.Model.RandomModel.TensorShapes(global::Memory3.Engine.Model.RandomModel.Preset(preset)).Sum(t => t.Shape.Aggregate(1L, (x, y) => x * y));
        Assert.InRange(Count("tiny"), 800_000, 1_300_000);
        Assert.InRange(Count("small"), 25_000_000, 35_000_000);
        Assert.InRange(Count("base"), 450_000_000, 600_000_000);
    }

    [Fact]
    public void UserErrorsAreOneLineWithExitCode2()
    {
        using var tmp = new TempDir();
        var missing = Memory3("generate", "--model", Path.Combine(tmp.Path, "nope"), "--prompt", "x");
        Assert.Equal(2, missing.Code);
        Assert.Contains("nope: no such model directory", missing.Err);

        var bad = tmp.Sub("bad");
        File.WriteAllText(Path.Combine(bad, "config.json"), "{ not json");
        var malformed = Memory3("bench", "load", "--model", bad);
        Assert.Equal(2, malformed.Code);
        Assert.Contains("config.json: malformed JSON", malformed.Err);

        var dir = Path.Combine(tmp.Path, "m");
        Assert.Equal(0, Memory3("init-random", "--preset", "tiny", "--out", dir, "--arch", "LlamaForCausalLM").Code);
        var cfg = Path.Combine(dir, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("LlamaForCausalLM", "FalconForCausalLM"));
        var arch = Memory3("generate", "--model", dir, "--prompt", "x");
        Assert.Equal(2, arch.Code);
        Assert.Contains("unsupported architecture 'FalconForCausalLM'", arch.Err);

        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("FalconForCausalLM", "LlamaForCausalLM"));
        var st = Path.Combine(dir, "model.safetensors");
        using (var fs = new FileStream(st, FileMode.Open)) fs.SetLength(fs.Length / 2);
        var truncated = Memory3("generate", "--model", dir, "--prompt", "x");
        Assert.Equal(2, truncated.Code);
        Assert.Contains("model.safetensors: truncated", truncated.Err);

        var badPreset = Memory3("init-random", "--preset", "huge", "--out", Path.Combine(tmp.Path, "h"));
        Assert.Equal(2, badPreset.Code);
        Assert.Contains("unknown preset 'huge'", badPreset.Err);

        foreach (var r in new[] { missing, malformed, arch, truncated, badPreset })
        {
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.DoesNotContain("   at ", r.Err);
        }
    }

    [Fact]
    public void IngestSearchGenerateWithMemoryAndBankStats()
    {
        using var tmp = new TempDir();
        var model = Path.Combine(tmp.Path, "tiny");
        var bank = Path.Combine(tmp.Path, "bank");
        var docs = tmp.Sub("docs");
        File.WriteAllText(Path.Combine(docs, "facts.md"), "The Zorblax bridge in Quenton was built in 1987 by Ada Merrin.\n\nCats sleep sixteen hours a day.");
        File.WriteAllText(Path.Combine(docs, "empty.txt"), "");
        Assert.Equal(0, Memory3("init-random", "--preset", "tiny", "--out", model).Code);

        var ingest = Memory3("ingest", "--model", model, "--bank", bank, "--namespace", "world", docs);
        Assert.Equal(0, ingest.Code);
        Assert.Contains("empty.txt: empty file", ingest.Err);
        Assert.Contains("into 'world'", ingest.Out);
        var again = Memory3("ingest", "--model", model, "--bank", bank, "--namespace", "world", docs);
        Assert.Contains("Ingested 0 references", again.Out);

        var search = Memory3("search", "--model", model, "--bank", bank, "Zorblax bridge 1987");
        Assert.Equal(0, search.Code);
        Assert.Contains("Zorblax", search.Out);

        var gen = Memory3("generate", "--model", model, "--bank", bank, "--prompt", "Tell me about the Zorblax bridge", "--max-tokens", "8", "--temperature", "0");
        Assert.Equal(0, gen.Code);
        Assert.Contains("References attached to each window:", gen.Out);
        Assert.Contains("prompt tokens 0..", gen.Out);

        var stats = Memory3("bank", "stats", "--model", model, "--bank", bank);
        Assert.Equal(0, stats.Code);
        Assert.Contains("bf16", stats.Out);
    }
}
