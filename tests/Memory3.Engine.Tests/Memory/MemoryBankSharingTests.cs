using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Memory.Retrieve;
using Memory3.Engine.Memory.Store;

namespace Memory3.Engine.Tests.Memory;

/// <summary>
/// Banks shared as on Kubernetes: serving banks opened read-only beside writers, and writers with their own ids (the
/// ingestion Job's indexes) writing one bank. Real model, real files.
/// </summary>
public class MemoryBankSharingTests(TinyMemory3Fixture f) : IClassFixture<TinyMemory3Fixture>
{
    /// <summary>The hashing embedder, counting the texts it embeds.</summary>
    private sealed class CountingEmbedder : IEmbedder
    {
        private readonly HashingEmbedder _inner = new();
        private int _texts;
        public int Texts => Volatile.Read(ref _texts);
        public int Dimensions => _inner.Dimensions;
        public string ModelId => _inner.ModelId;
        public float[][] Embed(IReadOnlyList<string> texts)
        {
            Interlocked.Add(ref _texts, texts.Count);
            return _inner.Embed(texts);
        }
        public void Dispose() { }
    }

    private static MemoryBankOptions Opts(bool readOnly = false, string? writer = null, IEmbedder? embedder = null, TimeSpan refresh = default) =>
        new() { Embedder = embedder ?? new HashingEmbedder(), ProcessCacheBytes = 16L << 20, ReadOnly = readOnly, WriterId = writer, RefreshInterval = refresh };

    private static Document[] Docs(params string[] texts) => texts.Select((t, i) => new Document($"doc{i}", t, null)).ToArray();

    private const string Bridge = "The Zorblax bridge in Quenton was built in 1987 by Ada Merrin.";
    private const string Airship = "Captain Orla Vance commanded the airship Meridian for nine years.";
    private const string Fungi = "The Heliotrope Institute studies bioluminescent fungi in caves.";

    private static bool Finds(MemoryBank bank, string query, string needle) => bank.Search(query, null, 3).Any(h => h.Text.Contains(needle));

    private static Dictionary<string, (long, DateTime)> Snapshot(string dir) =>
        Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(p => p, p => File.Exists(p) ? (new FileInfo(p).Length, File.GetLastWriteTimeUtc(p)) : (-1L, Directory.GetLastWriteTimeUtc(p)));

    [Fact]
    public async Task AReadOnlyBankServesAWritersBankRefusesWritesAndFollowsItOnRefresh()
    {
        var dir = f.NewBankDir();
        using var writer = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts());
        writer.Ingest(Docs(Bridge), "world");

        var before = Snapshot(dir);
        using (var ro = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(readOnly: true)))
        {
            Assert.True(ro.ReadOnly);
            Assert.True(ro.Stats().ReadOnly);
            Assert.True(Finds(ro, "Who built the Zorblax bridge?", "Zorblax"));
            var ex = Assert.Throws<MemoryBankReadOnlyException>(() => ro.Ingest(Docs(Airship), "world"));
            Assert.Contains("read-only", ex.Message);
            var id = ro.Disk.EnumerateAll().First().Id;
            await Assert.ThrowsAsync<MemoryBankReadOnlyException>(async () => await ro.DeleteAsync(id));
            ro.SaveIndex();                                           // a no-op
        }
        Assert.Equal(before, Snapshot(dir));                          // opening, reading and refusing changed nothing

        using var follower = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(readOnly: true));
        writer.Ingest(Docs(Airship), "world");
        Assert.False(Finds(follower, "Who commanded the airship Meridian?", "Meridian"));
        var r = follower.Refresh();
        Assert.True(r.RecordsRead >= 1);
        Assert.Equal(r.RecordsRead, r.Indexed);
        Assert.True(Finds(follower, "Who commanded the airship Meridian?", "Meridian"));
        var got = await follower.RetrieveAsync(new MemoryQuery("airship Meridian Orla Vance", null, 2));
        Assert.Contains(got.Citations, c => c.Text.Contains("Meridian"));
        Assert.Equal(got.Citations.Count, got.Memories.Count);
        Assert.NotNull(follower.Stats().RefreshedAt);

        // A delete by the writer reaches the follower too.
        var meridian = writer.Disk.EnumerateAll().Single(x => x.Text.Contains("Meridian")).Id;
        Assert.True(await writer.DeleteAsync(meridian));
        r = follower.Refresh();
        Assert.Equal(1, r.Removed);
        Assert.False(Finds(follower, "Who commanded the airship Meridian?", "Meridian"));
        Assert.DoesNotContain((await follower.RetrieveAsync(new MemoryQuery("airship Meridian Orla Vance", null, 2))).Citations, c => c.Id == meridian);
    }

    [Fact]
    public void AReadOnlyBankRefreshesInTheBackground()
    {
        var dir = f.NewBankDir();
        using var writer = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts());
        using var follower = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(readOnly: true, refresh: TimeSpan.FromMilliseconds(50)));
        writer.Ingest(Docs(Fungi), "world");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!Finds(follower, "bioluminescent fungi in caves", "Heliotrope") && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.True(Finds(follower, "bioluminescent fungi in caves", "Heliotrope"), "the background refresh should index the writer's new reference");
        Assert.Equal(0, follower.Stats().RefreshErrors);
    }

    [Fact]
    public void WritersWithIdsIngestIntoOneBankAndAReadOnlyBankServesTheUnionWithoutReembedding()
    {
        var dir = f.NewBankDir();
        using (var w0 = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(writer: "0")))
        using (var w1 = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(writer: "1")))   // both open at once, as two Job indexes
        {
            Assert.Equal("0", w0.WriterId);
            w0.Ingest(Docs(Bridge), "world");
            w1.Ingest(Docs(Airship, Fungi), "world");
        }
        Assert.True(Directory.Exists(Path.Combine(dir, "index-0")));
        Assert.True(Directory.Exists(Path.Combine(dir, "index-1")));
        Assert.False(Directory.Exists(Path.Combine(dir, "index")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir, "segments"), "seg-0-*.m3s"));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir, "segments"), "seg-1-*.m3s"));

        var counting = new CountingEmbedder();
        using var ro = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(readOnly: true, embedder: counting));
        Assert.Equal(0, counting.Texts);                              // every vector came from the writers' saved indexes
        Assert.Equal(ro.Disk.Count, ro.Retriever.Count);
        Assert.Equal(new[] { "0", "1" }, ro.Stats().Writers);
        Assert.True(Finds(ro, "Who built the Zorblax bridge?", "Zorblax"));
        Assert.True(Finds(ro, "Who commanded the airship Meridian?", "Meridian"));
        Assert.True(Finds(ro, "bioluminescent fungi in caves", "Heliotrope"));
        Assert.False(Directory.Exists(Path.Combine(dir, "index")));  // read-only: nothing saved
    }

    [Fact]
    public void ANamedWriterDoesNotWriteDuringAQuantizerConversion()
    {
        var dir = f.NewBankDir();
        using (var bank = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts())) bank.Ingest(Docs(Bridge), "world");
        Directory.CreateDirectory(Path.Combine(dir, ".quantizing"));   // `memory3 quantizer train` at work (or interrupted)
        var e = Assert.Throws<MemoryStoreException>(() => MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(writer: "3")));
        Assert.Contains("quantizer conversion", e.Message);
        using (var ro = MemoryBank.Open(dir, f.Model, f.Tokenizer, Opts(readOnly: true))) Assert.Equal(1, ro.Stats().References);
        Assert.True(Directory.Exists(Path.Combine(dir, ".quantizing")));   // neither touched it
    }
}
