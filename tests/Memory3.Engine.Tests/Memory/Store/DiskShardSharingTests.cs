using System.Text;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Store;
using static Memory3.Engine.Tests.Memory.Store.StoreTestData;

namespace Memory3.Engine.Tests.Memory.Store;

/// <summary>
/// One bank shared by several stores on real files, as pods and Job indexes share a volume: read-only openers that
/// follow writers with <see cref="DiskShardStore.Refresh"/>, and writers with different ids side by side.
/// </summary>
public class DiskShardSharingTests
{
    private static readonly DiskShardOptions ReadOnly = new() { ReadOnly = true };
    private static DiskShardOptions Writer(string? id, long segmentSize = 256L << 20) => new() { WriterId = id, SegmentSizeBytes = segmentSize };
    private static string SegDir(string bank) => Path.Combine(bank, "segments");

    private static Dictionary<string, (long Length, DateTime Modified)> Snapshot(string dir) =>
        Directory.Exists(dir)
            ? Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, f => (new FileInfo(f).Length, File.GetLastWriteTimeUtc(f)))
            : [];

    private static async Task AssertServes(DiskShardStore store, IReadOnlyList<MemoryRecord> expected)
    {
        var got = await store.GetManyAsync(expected.Select(r => r.Id).ToList());
        for (int i = 0; i < expected.Count; i++) AssertSame(expected[i], got[i]);
    }

    private static async Task AssertAbsent(DiskShardStore store, IEnumerable<MemoryRecord> records) =>
        Assert.All(await store.GetManyAsync(records.Select(r => r.Id).ToList()), Assert.Null);

    [Fact]
    public async Task AReadOnlyStoreRefusesWritesAndChangesNoFile()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var records = Records(4, seed: 101);
        using (var writer = DiskShardStore.Open(tmp.Path, fp)) await writer.PutManyAsync(records);
        var before = Snapshot(tmp.Path);

        using (var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly))
        {
            Assert.True(ro.ReadOnly);
            Assert.True(ro.RecoveryReport.Clean);
            await AssertServes(ro, records);
            var put = await Assert.ThrowsAsync<MemoryBankReadOnlyException>(async () => await ro.PutManyAsync(Records(1, seed: 102)));
            Assert.Contains("read-only", put.Message);
            Assert.Contains(tmp.Path, put.Message);
            await Assert.ThrowsAsync<MemoryBankReadOnlyException>(async () => await ro.DeleteAsync(records[0].Id));
            Assert.Throws<MemoryBankReadOnlyException>(() => ro.Compact());
            Assert.Equal(4, ro.Count);
            ro.Refresh();
        }
        Assert.Equal(before, Snapshot(tmp.Path));   // no lock file, no new segment, nothing truncated or touched

        // A bank that does not exist yet is an empty bank, and opening it read-only creates nothing.
        string missing = Path.Combine(tmp.Path, "not-yet");
        using (var ro = DiskShardStore.Open(missing, fp, ReadOnly))
        {
            Assert.Equal(0, ro.Count);
            Assert.False(ro.Refresh().Changed);
        }
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public async Task AReadOnlyStoreOpensBesideALiveWriterAndPicksUpItsAppendsOnRefresh()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var first = Records(3, seed: 103);
        var later = Records(40, seed: 104);
        using var writer = DiskShardStore.Open(tmp.Path, fp, Writer(null, segmentSize: 4096));
        await writer.PutManyAsync(first);

        using var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly);   // the writer holds bank.lock: a reader takes no lock
        await AssertServes(ro, first);

        for (int i = 0; i < later.Count; i += 8) await writer.PutManyAsync(later.Skip(i).Take(8).ToList());
        Assert.True(writer.SegmentCount > 3);
        await AssertAbsent(ro, later);                                // nothing until a refresh
        Assert.False(ro.Contains(later[0].Id));

        var r = ro.Refresh();
        Assert.False(r.Reloaded);
        Assert.Equal(later.Count, r.RecordsApplied);
        Assert.True(r.NewSegments >= 3);
        Assert.Equal(later.Select(x => x.Id).Order(), r.Upserted.Order());
        Assert.Empty(r.Removed);
        await AssertServes(ro, later);
        await AssertServes(ro, first);
        Assert.Equal(43, ro.Count);
        Assert.Equal(writer.SegmentCount, ro.SegmentCount);
        Assert.False(ro.Refresh().Changed);                          // nothing new: nothing to do

        Assert.True(await writer.DeleteAsync(later[5].Id));
        r = ro.Refresh();
        Assert.Equal([later[5].Id], r.Removed);
        Assert.Null((await ro.GetManyAsync([later[5].Id]))[0]);
        Assert.Equal(42, ro.Count);
    }

    [Fact]
    public async Task ATornTailIsNotTruncatedReadOnlyAndIsPickedUpOnceComplete()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var records = Records(3, seed: 105);
        using (var writer = DiskShardStore.Open(tmp.Path, fp)) await writer.PutManyAsync(records);
        string seg = Path.Combine(SegDir(tmp.Path), "seg-000001.m3s");
        long durable = new FileInfo(seg).Length;

        // A writer half-way through an append (or one that crashed there): half of the next record is on disk.
        var next = Records(1, seed: 106)[0];
        byte[] bytes = MemoryRecordCodec.SerializePut(Encoding.UTF8.GetBytes(fp), next);
        int half = bytes.Length / 2;
        using (var fs = new FileStream(seg, FileMode.Append)) fs.Write(bytes, 0, half);

        using var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly);
        var rep = ro.RecoveryReport;
        Assert.Null(rep.TruncatedSegment);
        Assert.Equal(0, rep.TruncatedBytes);
        var tail = Assert.Single(rep.UnreadTails);
        Assert.Equal(seg, tail.Segment);
        Assert.Equal(durable, tail.Offset);
        Assert.Equal(half, tail.Length);
        Assert.Equal(durable + half, new FileInfo(seg).Length);      // not truncated
        await AssertServes(ro, records);
        Assert.False(ro.Contains(next.Id));

        // Refreshes while the tail stays incomplete (even when it stops growing) change nothing and skip nothing.
        for (int i = 0; i < 3; i++)
        {
            var r = ro.Refresh();
            Assert.False(r.Changed);
            Assert.Empty(r.SkippedRegions);
        }
        Assert.Null((await ro.GetManyAsync([next.Id]))[0]);
        Assert.Equal(durable + half, new FileInfo(seg).Length);

        using (var fs = new FileStream(seg, FileMode.Append)) fs.Write(bytes, half, bytes.Length - half);   // the append completes
        var done = ro.Refresh();
        Assert.Equal(1, done.RecordsApplied);
        Assert.Equal([next.Id], done.Upserted);
        AssertSame(next, (await ro.GetManyAsync([next.Id]))[0]);
        Assert.Equal(4, ro.Count);

        // The writer reopening finds a clean bank: the completed record was a whole, valid record.
        using var writer2 = DiskShardStore.Open(tmp.Path, fp);
        Assert.True(writer2.RecoveryReport.Clean);
        Assert.Equal(4, writer2.Count);
    }

    [Fact]
    public async Task ATornTailThatItsWriterTruncatesIsSkippedAndTheWritersNextAppendIsRead()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var records = Records(2, seed: 107);
        using (var writer = DiskShardStore.Open(tmp.Path, fp)) await writer.PutManyAsync(records);
        string seg = Path.Combine(SegDir(tmp.Path), "seg-000001.m3s");
        using (var fs = new FileStream(seg, FileMode.Append)) fs.Write(new byte[37]);   // garbage of a crashed append

        using var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly);
        Assert.Single(ro.RecoveryReport.UnreadTails);
        var more = Records(2, seed: 108);
        using (var writer = DiskShardStore.Open(tmp.Path, fp))      // the writer restarts: truncates its torn tail, appends
        {
            Assert.Equal(37, writer.RecoveryReport.TruncatedBytes);
            await writer.PutManyAsync(more);
        }
        var r = ro.Refresh();
        Assert.False(r.Reloaded);
        Assert.Equal(2, r.RecordsApplied);
        await AssertServes(ro, [.. records, .. more]);
    }

    [Fact]
    public async Task TwoWritersWithDifferentIdsWriteOneBankAndReadersSeeTheUnion()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var a = Records(60, seed: 109);
        var b = Records(60, seed: 110);
        using var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly);

        using (var w0 = DiskShardStore.Open(tmp.Path, fp, Writer("0", segmentSize: 4096)))
        using (var w1 = DiskShardStore.Open(tmp.Path, fp, Writer("1", segmentSize: 4096)))
        {
            Assert.Equal("0", w0.WriterId);
            // The same writer id twice is refused: one writer per id.
            var ex = Assert.Throws<MemoryStoreException>(() => DiskShardStore.Open(tmp.Path, fp, Writer("1")));
            Assert.Contains("writer-1.lock", ex.Message);
            // Concurrent appends and rolls, one task per writer.
            await Task.WhenAll(
                Task.Run(async () => { for (int i = 0; i < a.Count; i += 5) await w0.PutManyAsync(a.Skip(i).Take(5).ToList()); }),
                Task.Run(async () => { for (int i = 0; i < b.Count; i += 5) await w1.PutManyAsync(b.Skip(i).Take(5).ToList()); }));
            Assert.Equal(60, w0.Count);                               // a writer knows its own records; others' after a refresh
            var r0 = w0.Refresh();
            Assert.Equal(60, r0.RecordsApplied);
            Assert.Equal(120, w0.Count);
            await AssertServes(w0, b);
        }

        var names = Directory.GetFiles(SegDir(tmp.Path)).Select(Path.GetFileName).ToList();
        Assert.All(names, n => Assert.Matches(@"^seg-[01]-\d{6}\.m3s$", n!));
        Assert.Contains("seg-0-000001.m3s", names);
        Assert.Contains("seg-1-000001.m3s", names);
        Assert.True(names.Count(n => n!.StartsWith("seg-1-")) > 2);
        Assert.True(File.Exists(Path.Combine(tmp.Path, "writer-0.lock")));
        Assert.False(File.Exists(Path.Combine(tmp.Path, "bank.lock")));

        var r = ro.Refresh();
        Assert.Equal(120, r.RecordsApplied);
        Assert.Equal(120, ro.Count);
        await AssertServes(ro, [.. a, .. b]);
        using (var fresh = DiskShardStore.Open(tmp.Path, fp, ReadOnly))
        {
            Assert.True(fresh.RecoveryReport.Clean);
            Assert.Equal(new[] { "0", "1" }, fresh.Writers);
            await AssertServes(fresh, [.. a, .. b]);
        }
        // A writer reopening truncates only its own torn tail; another writer's unfinished tail is left alone.
        string other = Path.Combine(SegDir(tmp.Path), Directory.GetFiles(SegDir(tmp.Path), "seg-1-*").Select(Path.GetFileName).Order().Last()!);
        long otherLength = new FileInfo(other).Length;
        using (var fs = new FileStream(other, FileMode.Append)) fs.Write(new byte[20]);
        using (var w0 = DiskShardStore.Open(tmp.Path, fp, Writer("0")))
        {
            Assert.Equal(0, w0.RecoveryReport.TruncatedBytes);
            Assert.Equal(other, Assert.Single(w0.RecoveryReport.UnreadTails).Segment);
            Assert.Equal(otherLength + 20, new FileInfo(other).Length);
            Assert.Equal(120, w0.Count);
        }
        Assert.Throws<ArgumentException>(() => DiskShardStore.Open(tmp.Path, fp, Writer("no/slashes")));
    }

    [Fact]
    public async Task ADeleteByAnyWriterWinsAndReadersAgreeWhateverOrderTheyReadIn()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var x = Records(1, seed: 111)[0];
        var keep = Records(2, seed: 112);
        using var follower = DiskShardStore.Open(tmp.Path, fp, ReadOnly);   // reads every step as it happens
        using var w0 = DiskShardStore.Open(tmp.Path, fp, Writer("0"));
        using var w1 = DiskShardStore.Open(tmp.Path, fp, Writer("1"));

        async Task Check(bool xLive, string when)
        {
            follower.Refresh();
            using var fresh = DiskShardStore.Open(tmp.Path, fp, ReadOnly);      // reads everything at once
            foreach (var s in new[] { follower, fresh })
            {
                Assert.True(xLive == s.Contains(x.Id), $"{when}: {(s == follower ? "follower" : "fresh open")} says live={!xLive}");
                await AssertServes(s, keep);
                if (xLive) AssertSame(x, (await s.GetManyAsync([x.Id]))[0]);
                else Assert.Null((await s.GetManyAsync([x.Id]))[0]);
            }
        }

        await w0.PutManyAsync([x, keep[0]]);
        await w1.PutManyAsync([x, keep[1]]);                         // both writers hold the same memory
        await Check(true, "put by both");
        w1.Refresh();
        Assert.True(await w1.DeleteAsync(x.Id));                      // deleted by writer 1: gone, though writer 0 still has its put
        await Check(false, "deleted by 1");
        await w0.PutManyAsync([x]);                                   // writer 0 writing it again does not undo writer 1's delete
        await Check(false, "put again by 0");
        await w1.PutManyAsync([x]);                                   // writer 1 writing it again does
        await Check(true, "put again by 1");

        // Compaction keeps a tombstone while another writer's copy exists: the delete survives it.
        w1.Refresh();
        Assert.True(await w1.DeleteAsync(x.Id));
        await Check(false, "deleted by 1 again");
        w1.Compact();
        await Check(false, "writer 1 compacted");
        w0.Compact();
        await Check(false, "writer 0 compacted");
    }

    [Fact]
    public async Task ReadersFollowAWriterThatCompacts()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var records = Records(30, seed: 113);
        using var writer = DiskShardStore.Open(tmp.Path, fp, Writer("7", segmentSize: 4096));
        await writer.PutManyAsync(records);
        for (int i = 0; i < 10; i++) await writer.DeleteAsync(records[i].Id);
        using var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly);
        Assert.Equal(20, ro.Count);

        writer.Compact();                                             // new segments, the old ones deleted
        var r = ro.Refresh();
        Assert.True(r.Reloaded, "a vanished segment makes the reader rescan");
        Assert.Empty(r.Removed);
        Assert.Equal(20, ro.Count);
        Assert.Equal(writer.SegmentCount, ro.SegmentCount);
        await AssertServes(ro, records.Skip(10).ToList());
        await AssertAbsent(ro, records.Take(10));

        await writer.PutManyAsync([records[0]]);
        r = ro.Refresh();
        Assert.False(r.Reloaded);
        Assert.Equal([records[0].Id], r.Upserted);
        Assert.Equal(21, ro.Count);
    }

    [Fact]
    public async Task DamageInASealedSegmentIsSkippedByRefreshOnlyOnceItPersists()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        using var ro = DiskShardStore.Open(tmp.Path, fp, ReadOnly);
        var records = Records(12, seed: 114);
        using (var writer = DiskShardStore.Open(tmp.Path, fp, Writer(null, segmentSize: 4096))) await writer.PutManyAsync(records);
        string seg1 = Path.Combine(SegDir(tmp.Path), "seg-000001.m3s");
        Assert.True(File.Exists(Path.Combine(SegDir(tmp.Path), "seg-000002.m3s")));
        int first = SizeOf(fp, records[0]);
        using (var fs = new FileStream(seg1, FileMode.Open, FileAccess.ReadWrite))   // damage the second record of the sealed segment 1
        {
            fs.Position = first + 40;
            int b = fs.ReadByte();
            fs.Position = first + 40;
            fs.WriteByte((byte)(b ^ 0x5A));
        }

        // First sight: maybe a write in progress, so the reader waits at the damage (and applies nothing after it in that writer's order).
        var r = ro.Refresh();
        Assert.Equal(1, r.RecordsApplied);
        Assert.Empty(r.SkippedRegions);
        Assert.Equal(1, ro.Count);
        // Still there, the file unchanged: damage. Skipped (never served), and the rest is read.
        r = ro.Refresh();
        var skipped = Assert.Single(r.SkippedRegions);
        Assert.Equal(seg1, skipped.Segment);
        Assert.Equal(first, skipped.Offset);
        Assert.Equal(11, ro.Count);
        Assert.Null((await ro.GetManyAsync([records[1].Id]))[0]);
        await AssertServes(ro, records.Where((_, i) => i != 1).ToList());
    }
}
