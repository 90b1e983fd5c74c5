using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Store;
using static Memory3.Engine.Tests.Memory.Store.StoreTestData;

namespace Memory3.Engine.Tests.Memory.Store;

public class DiskShardStoreTests
{
    private static string SegmentFile(string bankDir, int n) => Path.Combine(bankDir, "segments", $"seg-{n:D6}.m3s");

    private static async Task<List<MemoryRecord>> PutOneByOne(DiskShardStore store, IEnumerable<MemoryRecord> records)
    {
        var list = records.ToList();
        foreach (var r in list) await store.PutManyAsync([r]);
        return list;
    }

    private static void FlipByte(string path, long offset)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        fs.Position = offset;
        int b = fs.ReadByte();
        fs.Position = offset;
        fs.WriteByte((byte)(b ^ 0x5A));
    }

    [Fact]
    public async Task RoundTripsByteExactAcrossReopen()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var records = Records(20, seed: 1);
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            Assert.Equal("disk", store.Tier);
            await store.PutManyAsync(records.Take(12).ToList());
            await store.PutManyAsync(records.Skip(12).ToList());
            var got = await store.GetManyAsync([records[3].Id, "0123456789abcdef0123456789abcdef", records[19].Id]);
            AssertSame(records[3], got[0]);
            Assert.Null(got[1]);
            AssertSame(records[19], got[2]);
            Assert.Equal(20, store.Count);
            Assert.True(store.Contains(records[0].Id));
            Assert.False(store.Contains("nope"));
        }
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            Assert.True(store.RecoveryReport.Clean);
            Assert.Equal(20, store.RecoveryReport.RecordsScanned);
            var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
            for (int i = 0; i < records.Count; i++) AssertSame(records[i], got[i]);
            var all = store.EnumerateAll().ToDictionary(r => r.Id);
            Assert.Equal(20, all.Count);
            foreach (var r in records) AssertSame(r, all[r.Id]);
            Assert.Equal(new FileInfo(SegmentFile(tmp.Path, 1)).Length, store.BytesOnDisk);
        }
    }

    [Fact]
    public async Task TornTailIsTruncatedAndNeverServed()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        List<MemoryRecord> records;
        using (var store = DiskShardStore.Open(tmp.Path, fp)) records = await PutOneByOne(store, Records(5, seed: 2));
        string seg = SegmentFile(tmp.Path, 1);
        long full = new FileInfo(seg).Length;
        int lastLen = SizeOf(fp, records[^1]);
        using (var fs = new FileStream(seg, FileMode.Open)) fs.SetLength(full - lastLen / 2);   // a crash half-way through the last append

        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            var rep = store.RecoveryReport;
            Assert.Equal(seg, rep.TruncatedSegment);
            Assert.Equal(full - lastLen, rep.TruncatedAtOffset);
            Assert.Equal(lastLen - lastLen / 2, rep.TruncatedBytes);
            Assert.Equal(full - lastLen, new FileInfo(seg).Length);
            var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
            for (int i = 0; i < 4; i++) AssertSame(records[i], got[i]);
            Assert.Null(got[4]);
            Assert.Equal(4, store.Count);
            await store.PutManyAsync([records[4]]);   // appends after the good end
        }
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            Assert.True(store.RecoveryReport.Clean);
            Assert.Equal(5, store.Count);
            AssertSame(records[4], (await store.GetManyAsync([records[4].Id]))[0]);
        }
    }

    [Fact]
    public async Task DamagedLastRecordIsTreatedAsATornTail()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        List<MemoryRecord> records;
        using (var store = DiskShardStore.Open(tmp.Path, fp)) records = await PutOneByOne(store, Records(3, seed: 3));
        string seg = SegmentFile(tmp.Path, 1);
        long full = new FileInfo(seg).Length;
        FlipByte(seg, full - 10);   // inside the last record's payload
        using var reopened = DiskShardStore.Open(tmp.Path, fp);
        Assert.Equal(SizeOf(fp, records[2]), reopened.RecoveryReport.TruncatedBytes);
        var got = await reopened.GetManyAsync(records.Select(r => r.Id).ToList());
        AssertSame(records[0], got[0]);
        AssertSame(records[1], got[1]);
        Assert.Null(got[2]);
    }

    [Theory]
    [InlineData("payload")]
    [InlineData("length")]
    [InlineData("magic")]
    public async Task CorruptMiddleRecordIsSkippedAndTheRestServed(string where)
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        List<MemoryRecord> records;
        using (var store = DiskShardStore.Open(tmp.Path, fp)) records = await PutOneByOne(store, Records(5, seed: 4));
        long offset2 = SizeOf(fp, records[0]) + SizeOf(fp, records[1]);
        long damage = where switch
        {
            "payload" => offset2 + SizeOf(fp, records[2]) - 40,
            "length" => offset2 + 11,   // top byte of the length: implausible
            _ => offset2,
        };
        FlipByte(SegmentFile(tmp.Path, 1), damage);

        using var reopened = DiskShardStore.Open(tmp.Path, fp);
        var rep = reopened.RecoveryReport;
        Assert.Null(rep.TruncatedSegment);
        var region = Assert.Single(rep.SkippedRegions);
        Assert.Equal(offset2, region.Offset);
        Assert.Equal(SizeOf(fp, records[2]), region.Length);
        var got = await reopened.GetManyAsync(records.Select(r => r.Id).ToList());
        for (int i = 0; i < 5; i++)
            if (i == 2) Assert.Null(got[i]);
            else AssertSame(records[i], got[i]);
        Assert.Equal(4, reopened.Count);
    }

    [Fact]
    public async Task RecordDamagedAfterOpenIsNotServedAndCounted()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        using var store = DiskShardStore.Open(tmp.Path, fp);
        var records = await PutOneByOne(store, Records(3, seed: 5));
        FlipByte(SegmentFile(tmp.Path, 1), SizeOf(fp, records[0]) + 30);
        var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
        AssertSame(records[0], got[0]);
        Assert.Null(got[1]);
        AssertSame(records[2], got[2]);
        Assert.Equal(1, store.CorruptReads);
        Assert.Equal(2, store.EnumerateAll().Count());
    }

    [Fact]
    public async Task ForeignFingerprintIsRefusedWithAClearMessage()
    {
        using var tmp = new TempDir();
        using (var store = DiskShardStore.Open(tmp.Path, "model-A"))
            await store.PutManyAsync(Records(2, seed: 6));
        var ex = Assert.Throws<BankFingerprintMismatchException>(() => DiskShardStore.Open(tmp.Path, "model-B"));
        Assert.Contains("model-A", ex.Message);
        Assert.Contains("model-B", ex.Message);
        Assert.Contains(tmp.Path, ex.Message);
        Assert.Equal("model-A", ex.FoundFingerprint);
        using var again = DiskShardStore.Open(tmp.Path, "model-A");   // the failed open released the bank
        Assert.Equal(2, again.Count);
    }

    [Fact]
    public async Task TombstonesSurviveReopen()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var records = Records(3, seed: 7);
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            await store.PutManyAsync(records);
            Assert.True(await store.DeleteAsync(records[1].Id));
            Assert.False(await store.DeleteAsync(records[1].Id));
            Assert.False(await store.DeleteAsync("never-stored"));
            Assert.Null((await store.GetManyAsync([records[1].Id]))[0]);
            Assert.Equal(2, store.Count);
        }
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            Assert.Equal(2, store.Count);
            Assert.False(store.Contains(records[1].Id));
            var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
            AssertSame(records[0], got[0]);
            Assert.Null(got[1]);
            AssertSame(records[2], got[2]);
            await store.PutManyAsync([records[1]]);   // a put after a tombstone revives it
        }
        using (var store = DiskShardStore.Open(tmp.Path, fp)) Assert.Equal(3, store.Count);
    }

    [Fact]
    public async Task CompactionKeepsLiveRecordsAndShrinksTheFiles()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var options = new DiskShardOptions { SegmentSizeBytes = 4096 };
        var records = Records(30, seed: 8);
        var rewritten = Records(5, seed: 9).Select((r, i) => r with { Id = records[i].Id }).ToList();
        using (var store = DiskShardStore.Open(tmp.Path, fp, options))
        {
            await store.PutManyAsync(records);
            await store.PutManyAsync(rewritten);
            for (int i = 10; i < 25; i++) Assert.True(await store.DeleteAsync(records[i].Id));
            Assert.True(store.SegmentCount > 3);
            long before = store.BytesOnDisk;
            var oldFiles = Directory.GetFiles(Path.Combine(tmp.Path, "segments"));

            var result = store.Compact();

            Assert.Equal(15, result.LiveRecords);
            Assert.Equal(before, result.BytesBefore);
            Assert.True(result.BytesAfter < before / 2, $"{result.BytesAfter} vs {before}");
            Assert.Equal(result.BytesAfter, store.BytesOnDisk);
            Assert.All(oldFiles, f => Assert.False(File.Exists(f)));
            Assert.Equal(result.BytesAfter, Directory.GetFiles(Path.Combine(tmp.Path, "segments")).Sum(f => new FileInfo(f).Length));
            await CheckLive(store);
            await store.PutManyAsync([records[12]]);   // writes continue after compaction
        }
        using (var store = DiskShardStore.Open(tmp.Path, fp, options))
        {
            Assert.True(store.RecoveryReport.Clean);
            Assert.Equal(16, store.Count);
            AssertSame(records[12], (await store.GetManyAsync([records[12].Id]))[0]);
            Assert.True(await store.DeleteAsync(records[12].Id));
            await CheckLive(store);
        }

        async Task CheckLive(DiskShardStore store)
        {
            var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
            for (int i = 0; i < records.Count; i++)
                if (i < 5) AssertSame(rewritten[i], got[i]);
                else if (i is >= 10 and < 25) Assert.Null(got[i]);
                else AssertSame(records[i], got[i]);
        }
    }

    [Fact]
    public async Task ACrashAnywhereInCompactionLosesNothingAndResurrectsNothing()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var options = new DiskShardOptions { SegmentSizeBytes = 4096 };
        var records = Records(24, seed: 14);
        string segDir = Path.Combine(tmp.Path, "segments");
        string[] oldFiles, newFiles;
        var snapshot = new Dictionary<string, byte[]>();
        using (var store = DiskShardStore.Open(tmp.Path, fp, options))
        {
            await store.PutManyAsync(records);
            for (int i = 0; i < 24; i += 2) await store.DeleteAsync(records[i].Id);   // tombstones spread over later segments
            oldFiles = Directory.GetFiles(segDir).Order().ToArray();
            foreach (var f in oldFiles) snapshot[f] = File.ReadAllBytes(f);
            store.Compact();
            newFiles = Directory.GetFiles(segDir).Order().ToArray();
        }
        Assert.True(oldFiles.Length > 2);
        var newSnapshot = newFiles.ToDictionary(f => f, File.ReadAllBytes);

        // A crash after the new segments were written and k of the old ones (oldest first) deleted.
        for (int k = 0; k <= oldFiles.Length; k++)
        {
            foreach (var f in Directory.GetFiles(segDir)) File.Delete(f);
            foreach (var f in oldFiles.Skip(k)) File.WriteAllBytes(f, snapshot[f]);
            foreach (var (f, bytes) in newSnapshot) File.WriteAllBytes(f, bytes);
            await Check($"k={k}");
        }
        // A crash while the last new segment was half written: every old segment is still there.
        foreach (var f in Directory.GetFiles(segDir)) File.Delete(f);
        foreach (var (f, bytes) in snapshot) File.WriteAllBytes(f, bytes);
        foreach (var (f, bytes) in newSnapshot) File.WriteAllBytes(f, f == newFiles[^1] ? bytes[..(bytes.Length / 2)] : bytes);
        await Check("torn new segment");

        async Task Check(string when)
        {
            using var store = DiskShardStore.Open(tmp.Path, fp, options);
            Assert.True(store.Count == 12, $"{when}: {store.Count} live");
            var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
            for (int i = 0; i < records.Count; i++)
                if (i % 2 == 0) Assert.Null(got[i]);
                else AssertSame(records[i], got[i]);
        }
    }

    [Fact]
    public void UnusableBankDirectoryGivesAClearError()
    {
        using var tmp = new TempDir();
        string file = Path.Combine(tmp.Path, "not-a-dir");
        File.WriteAllText(file, "x");
        string bankDir = Path.Combine(file, "bank");   // its parent is a regular file: fails even as root
        var ex = Assert.Throws<MemoryStoreException>(() => DiskShardStore.Open(bankDir, "fp"));
        Assert.Contains(bankDir, ex.Message);
    }

    [Fact]
    public void BankIsLockedAgainstASecondOpener()
    {
        using var tmp = new TempDir();
        using var first = DiskShardStore.Open(tmp.Path, "fp");
        var ex = Assert.Throws<MemoryStoreException>(() => DiskShardStore.Open(tmp.Path, "fp"));
        Assert.Contains("lock", ex.Message);
    }

    [Fact]
    public async Task FailedAppendLeavesNoPartialRecordBehind()
    {
        using var tmp = new TempDir();
        string fp = NewFingerprint();
        var good = Records(3, seed: 10);
        var batch = Records(4, seed: 11);
        string seg = SegmentFile(tmp.Path, 1);
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            await store.PutManyAsync(good);
            long goodLength = new FileInfo(seg).Length;
            store.FailWriteAt = i => i == 2;   // "disk full" half-way through the third record of the batch
            var ex = await Assert.ThrowsAsync<MemoryStoreException>(async () => await store.PutManyAsync(batch));
            Assert.Contains("No space left", ex.Message);
            Assert.Equal(goodLength, new FileInfo(seg).Length);
            Assert.All(await store.GetManyAsync(batch.Select(r => r.Id).ToList()), Assert.Null);
            Assert.Equal(3, store.Count);
            store.FailWriteAt = null;
            await store.PutManyAsync([batch[0]]);
        }
        using (var store = DiskShardStore.Open(tmp.Path, fp))
        {
            Assert.True(store.RecoveryReport.Clean);
            Assert.Equal(4, store.Count);
            AssertSame(batch[0], (await store.GetManyAsync([batch[0].Id]))[0]);
            Assert.False(store.Contains(batch[1].Id));
        }
    }

    [Fact]
    public async Task ReadsRunConcurrentlyWithWritesAndRolls()
    {
        using var tmp = new TempDir();
        using var store = DiskShardStore.Open(tmp.Path, NewFingerprint(), new DiskShardOptions { SegmentSizeBytes = 8192 });
        var first = Records(10, seed: 12);
        await store.PutManyAsync(first);
        var more = Records(200, seed: 13);
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < more.Count; i += 10) await store.PutManyAsync(more.Skip(i).Take(10).ToList());
        });
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!writer.IsCompleted)
            {
                var got = await store.GetManyAsync(first.Select(r => r.Id).ToList());
                for (int i = 0; i < first.Count; i++) AssertSame(first[i], got[i]);
            }
        })).ToArray();
        await writer;
        await Task.WhenAll(readers);
        Assert.Equal(210, store.Count);
        Assert.True(store.SegmentCount > 10);
        var all = await store.GetManyAsync(more.Select(r => r.Id).ToList());
        for (int i = 0; i < more.Count; i++) AssertSame(more[i], all[i]);
    }
}
