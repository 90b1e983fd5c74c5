using Memory3.Engine.Inference;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Memory.Quantize;
using Memory3.Engine.Memory.Retrieve;
using Memory3.Engine.Memory.Store;
using Memory3.Engine.Model;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tests.Memory.Store;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Memory;

/// <summary>A tiny Memory3 model with its tokenizer, for bank tests (the bank runs on its real code path).</summary>
public sealed class TinyMemory3Fixture : IDisposable
{
    private readonly TempDir _dir = new();
    public string ModelDir => _dir.Sub("model");
    public CausalLM Model { get; }
    public ITokenizer Tokenizer { get; }

    public TinyMemory3Fixture()
    {
        var cfg = RandomModel.Preset("tiny");
        var tok = RandomTokenizer.Write(ModelDir, cfg.VocabSize);
        RandomModel.Write(ModelDir, cfg with { BosTokenId = tok.BosId, EosTokenIds = [tok.EosId] }, StDType.BF16, seed: 17);
        Model = CausalLM.Load(ModelDir, new ModelOptions { DType = "float32" });
        Tokenizer = TokenizerLoader.Load(ModelDir);
    }

    public string NewBankDir() => Path.Combine(_dir.Path, "bank-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        Model.Dispose();
        _dir.Dispose();
    }
}

public class MemoryBankTests(TinyMemory3Fixture f) : IClassFixture<TinyMemory3Fixture>
{
    private static readonly string[] Facts =
    [
        "The Zorblax bridge in Quenton was built in 1987 by Ada Merrin.",
        "The river Lethe floods every spring and carries red clay to the sea.",
        "Captain Orla Vance commanded the airship Meridian for nine years.",
        "The Heliotrope Institute studies bioluminescent fungi in caves.",
        "Tessaly Park opened in 2004 and holds four thousand oak trees.",
        "The composer Ivo Starling wrote eleven symphonies for glass harmonica.",
    ];

    private MemoryBankOptions Opts(string? redis = null, long process = 64L << 20) =>
        new() { Embedder = new HashingEmbedder(), Redis = redis, ProcessCacheBytes = process };

    private static Document[] Docs(params string[] texts) => texts.Select((t, i) => new Document($"doc{i}", t, null)).ToArray();

    [Fact]
    public void IngestSearchRetrieveAndReingestSkips()
    {
        var dir = f.NewBankDir();
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts()))
        {
            var r = bank.Ingest(Docs(string.Join("\n\n", Facts)), "world", null);
            Assert.Equal(1, r.Documents);
            Assert.True(r.References >= 1);
            var hits = bank.Search("Who built the Zorblax bridge in 1987?", null, 3);
            Assert.Contains("Zorblax", hits[0].Text);
            var got = bank.RetrieveAsync(new MemoryQuery("Zorblax bridge 1987", null, 2)).AsTask().Result;
            Assert.NotEmpty(got.Memories);
            var m = got.Memories[0];
            var shape = bank.Shape;
            Assert.Equal(shape.Layers * shape.KvHeads * shape.TokensPerHead * shape.HeadDim, m.Keys.Length);
            Assert.Equal(got.Citations[0].Id, m.Id);
        }
        // Reopened: the same text again is skipped, nothing is re-encoded.
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts()))
        {
            int before = bank.Stats().References;
            var again = bank.Ingest(Docs(string.Join("\n\n", Facts)), "world", null);
            Assert.Equal(0, again.References);
            Assert.Equal(before, again.Skipped);
            Assert.Equal(before, bank.Stats().References);
        }
    }

    [Fact]
    public void ASearchInOneNamespaceNeverReturnsAnothers()
    {
        using var bank = MemoryBank.Open(f.NewBankDir(), f.Model, f.Tokenizer, Opts());
        bank.Ingest(Docs(Facts[0]), "a", null);
        bank.Ingest(Docs(Facts[1..]), "b", null);
        var hits = bank.Search("Zorblax bridge Quenton 1987 Ada Merrin", ["b"], 5);
        Assert.NotEmpty(hits);
        Assert.All(hits, h => Assert.Equal("b", h.Namespace));
        var got = bank.RetrieveAsync(new MemoryQuery("Zorblax bridge", ["b"], 5)).AsTask().Result;
        Assert.All(got.Citations, c => Assert.Equal("b", c.Namespace));
    }

    [Fact]
    public void ABankMadeForAnotherModelIsRefused()
    {
        var dir = f.NewBankDir();
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts())) bank.Ingest(Docs(Facts[0]), "world", null);
        using var other = new TempDir();
        var cfg = RandomModel.Preset("tiny");
        File.Copy(Path.Combine(f.ModelDir, "tokenizer.json"), Path.Combine(other.Path, "tokenizer.json"));
        File.Copy(Path.Combine(f.ModelDir, "tokenizer_config.json"), Path.Combine(other.Path, "tokenizer_config.json"));
        RandomModel.Write(other.Path, cfg, StDType.BF16, seed: 99);   // same shapes, other weights
        using var otherModel = CausalLM.Load(other.Path);
        var e = Assert.Throws<BankFingerprintMismatchException>(() => MemoryBank.Open(dir, otherModel, f.Tokenizer, Opts()));
        Assert.Contains("cannot be served", e.Message);
    }

    [Fact]
    public void TrainingTheQuantizerConvertsTheBankAndKeepsIdsAndIndex()
    {
        var dir = f.NewBankDir();
        string[] ids;
        var many = Enumerable.Range(0, 60).Select(i => $"Record {i}: the station number {i * 7} logs {i % 5} storms and {i % 3} floods each year.").ToArray();
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts()))
        {
            bank.Ingest(Docs(many), "world", null);
            ids = bank.Disk.EnumerateAll().Select(r => r.Id).Order().ToArray();
        }
        var report = MemoryBank.TrainQuantizer(dir, f.Model, f.Tokenizer, new QuantizerOptions { SubQuantizers = 8, Iterations = 4 }, samples: 40, options: Opts());
        Assert.True(report.AllKeys.MeanRelativeError < 0.5);
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts()))
        {
            Assert.NotNull(bank.Quantizer);
            Assert.Equal(ids, bank.Disk.EnumerateAll().Select(r => r.Id).Order().ToArray());
            Assert.All(bank.Disk.EnumerateAll(), r => Assert.Equal(PayloadKind.Quantized, r.Kind));
            Assert.Equal("quantized", bank.Stats().PayloadMode);
            var got = bank.RetrieveAsync(new MemoryQuery("station number 14 storms", null, 3)).AsTask().Result;
            Assert.Equal(3, got.Memories.Count);
        }
    }

    [Fact]
    public void AQuantizerConversionInterruptedBeforeItsCommitRollsBack()
    {
        var dir = f.NewBankDir();
        string[] ids;
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts()))
        {
            bank.Ingest(Docs(Facts), "world", null);
            ids = bank.Disk.EnumerateAll().Select(r => r.Id).Order().ToArray();
        }
        // The state a crash leaves after the segment folders were swapped but before the quantizer file landed.
        Directory.Move(Path.Combine(dir, "segments"), Path.Combine(dir, ".segments-bf16"));
        Directory.CreateDirectory(Path.Combine(dir, "segments"));
        File.WriteAllText(Path.Combine(dir, "segments", "seg-000001.m3s"), "half-written quantized segment");
        Directory.CreateDirectory(Path.Combine(dir, ".quantizing"));
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts()))
        {
            Assert.Null(bank.Quantizer);
            Assert.Equal(ids, bank.Disk.EnumerateAll().Select(r => r.Id).Order().ToArray());
        }
        Assert.False(Directory.Exists(Path.Combine(dir, ".segments-bf16")));
        Assert.False(Directory.Exists(Path.Combine(dir, ".quantizing")));
    }

    [Fact]
    public void RedisStoppedInTheMiddleOfAGenerationCompletesFromDisk()
    {
        int port = RedisTargets.FreePort();
        var garnet = RedisTargets.StartGarnet(port);
        var dir = f.NewBankDir();
        using var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts($"127.0.0.1:{port}", process: 0));
        bank.Ingest(Docs(Facts), "world", null);
        var gen = new Generator(f.Model, f.Tokenizer) { Memory = new MemoryReadOptions(bank, RetrievalInterval: 8) };
        var p = new SamplingParams { Temperature = 0, MaxTokens = 40, IgnoreEos = true };
        var prompt = f.Tokenizer.Encode("Tell me about the Zorblax bridge and the river Lethe.");
        var reference = gen.Generate(prompt, p).Select(e => e.TokenId).ToList();
        var hitsBefore = bank.Tiers.GetStats();
        Assert.True(hitsBefore.RedisHits > 0, "the Redis tier should serve repeated windows");

        var tokens = new List<int>();
        foreach (var e in gen.Generate(prompt, p))
        {
            tokens.Add(e.TokenId);
            if (tokens.Count == 10) garnet.Dispose();   // Redis goes away mid-generation
        }
        Assert.Equal(reference, tokens);
        var after = bank.Tiers.GetStats();
        Assert.True(after.DiskHits > hitsBefore.DiskHits, "reads fell through to disk");
    }
}
