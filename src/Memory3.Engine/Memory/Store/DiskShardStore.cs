using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace Memory3.Engine.Memory.Store;

public sealed class DiskShardOptions
{
    /// <summary>A segment is rolled when the next record would take it past this size (a larger record gets a segment of its own).</summary>
    public long SegmentSizeBytes { get; init; } = 256L << 20;

    /// <summary>Records claiming to be larger than this are treated as corrupt when scanning.</summary>
    public int MaxRecordBytes { get; init; } = 64 << 20;
}

/// <summary>A stretch of a segment that was not a valid record and was skipped (never served).</summary>
public sealed record CorruptRegion(string Segment, long Offset, long Length, string Reason);

/// <summary>What opening the bank found: records scanned, damage skipped, a torn tail truncated.</summary>
public sealed record RecoveryReport(
    int SegmentsScanned,
    long RecordsScanned,
    IReadOnlyList<CorruptRegion> SkippedRegions,
    string? TruncatedSegment,
    long TruncatedAtOffset,
    long TruncatedBytes)
{
    /// <summary>True when nothing was skipped or truncated.</summary>
    public bool Clean => SkippedRegions.Count == 0 && TruncatedBytes == 0;
}

/// <summary>What <see cref="DiskShardStore.Compact"/> did.</summary>
public sealed record CompactionResult(int SegmentsBefore, int SegmentsAfter, long BytesBefore, long BytesAfter, int LiveRecords, int CorruptSkipped);

/// <summary>
/// The bank's source of truth: append-only segment files (<c>segments/seg-000001.m3s</c>) of self-describing records
/// (<see cref="MemoryRecordCodec"/>), an in-memory index id → (segment, offset, length) rebuilt on open, positioned
/// reads, one fsync per write batch. One writer at a time; reads run concurrently with writes. The bank directory is
/// locked (<c>bank.lock</c>) against a second opener.
/// </summary>
public sealed class DiskShardStore : IMemoryStore, IDisposable
{
    private const string SegmentPrefix = "seg-", SegmentSuffix = ".m3s";

    private sealed class Segment(int number, string path, SafeFileHandle handle, long length)
    {
        public int Number { get; } = number;
        public string Path { get; } = path;
        public SafeFileHandle Handle { get; } = handle;
        public long Length = length;
    }

    private readonly record struct Location(int Segment, long Offset, int Length);

    private readonly string _bankDir, _segmentDir, _fingerprint;
    private readonly byte[] _fingerprintUtf8;
    private readonly DiskShardOptions _options;
    private readonly ILogger _logger;
    private readonly FileStream _lockFile;
    private readonly ConcurrentDictionary<string, Location> _index = new(StringComparer.Ordinal);
    private readonly SortedDictionary<int, Segment> _segments = new();        // guarded by _segLock
    private readonly ReaderWriterLockSlim _segLock = new(LockRecursionPolicy.NoRecursion);
    private readonly Lock _writeLock = new();
    private Segment _active = null!;                                          // written only under _writeLock
    private long _corruptReads;
    private bool _disposed;

    /// <summary>Test hook: called with the batch index before each record is written; returning true makes that write fail half-way with an IOException (a simulated ENOSPC).</summary>
    internal Func<int, bool>? FailWriteAt { get; set; }

    public string Tier => "disk";
    public string BankDir => _bankDir;
    public string Fingerprint => _fingerprint;
    public RecoveryReport RecoveryReport { get; private set; } = null!;

    /// <summary>Live memories.</summary>
    public int Count => _index.Count;

    /// <summary>Records that failed verification when read after open (not served).</summary>
    public long CorruptReads => Interlocked.Read(ref _corruptReads);

    public long BytesOnDisk
    {
        get
        {
            _segLock.EnterReadLock();
            try
            {
                long sum = 0;
                foreach (var s in _segments.Values) sum += Volatile.Read(ref s.Length);
                return sum;
            }
            finally { _segLock.ExitReadLock(); }
        }
    }

    public int SegmentCount
    {
        get
        {
            _segLock.EnterReadLock();
            try { return _segments.Count; }
            finally { _segLock.ExitReadLock(); }
        }
    }

    public bool Contains(string id) => _index.ContainsKey(id);

    private DiskShardStore(string bankDir, string fingerprint, DiskShardOptions options, ILogger logger, FileStream lockFile)
    {
        _bankDir = bankDir;
        _segmentDir = System.IO.Path.Combine(bankDir, "segments");
        _fingerprint = fingerprint;
        _fingerprintUtf8 = Encoding.UTF8.GetBytes(fingerprint);
        _options = options;
        _logger = logger;
        _lockFile = lockFile;
    }

    /// <summary>
    /// Opens (or creates) the bank in <paramref name="bankDir"/>: scans every segment, rebuilds the index, truncates a
    /// torn tail and skips corrupt records (see <see cref="RecoveryReport"/>).
    /// </summary>
    /// <exception cref="BankFingerprintMismatchException">A record belongs to another bank fingerprint.</exception>
    /// <exception cref="MemoryStoreException">The directory cannot be created or written, or the bank is open elsewhere.</exception>
    public static DiskShardStore Open(string bankDir, string fingerprint, DiskShardOptions? options = null, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(bankDir);
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        options ??= new DiskShardOptions();
        if (options.SegmentSizeBytes < MemoryRecordCodec.MinRecordSize) throw new ArgumentOutOfRangeException(nameof(options), "SegmentSizeBytes is too small.");
        bankDir = System.IO.Path.GetFullPath(bankDir);
        FileStream lockFile;
        try
        {
            Directory.CreateDirectory(System.IO.Path.Combine(bankDir, "segments"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MemoryStoreException($"Cannot create the memory bank directory '{bankDir}': {ex.Message}", ex);
        }
        try
        {
            lockFile = new FileStream(System.IO.Path.Combine(bankDir, "bank.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new MemoryStoreException($"The memory bank directory '{bankDir}' is not writable: {ex.Message}", ex);
        }
        catch (IOException ex)
        {
            throw new MemoryStoreException($"Cannot lock the memory bank '{bankDir}' (is it open in another store or process?): {ex.Message}", ex);
        }
        var store = new DiskShardStore(bankDir, fingerprint, options, logger ?? NullLogger.Instance, lockFile);
        try
        {
            store.Recover();
            return store;
        }
        catch (Exception ex) when (ex is (IOException or UnauthorizedAccessException) and not MemoryStoreException)
        {
            store.Dispose();
            throw new MemoryStoreException($"Cannot open the memory bank '{bankDir}': {ex.Message}", ex);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    // ---------------------------------------------------------------- open / recovery

    private void Recover()
    {
        var numbers = new List<int>();
        foreach (var path in Directory.EnumerateFiles(_segmentDir, SegmentPrefix + "*" + SegmentSuffix))
        {
            var name = System.IO.Path.GetFileName(path);
            if (int.TryParse(name.AsSpan(SegmentPrefix.Length, name.Length - SegmentPrefix.Length - SegmentSuffix.Length),
                    NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0)
                numbers.Add(n);
        }
        numbers.Sort();

        var skipped = new List<CorruptRegion>();
        long records = 0;
        string? truncatedSegment = null;
        long truncatedAt = 0, truncatedBytes = 0;
        for (int i = 0; i < numbers.Count; i++)
        {
            bool last = i == numbers.Count - 1;
            string path = SegmentPath(numbers[i]);
            var handle = OpenSegmentHandle(path, FileMode.Open);
            var seg = new Segment(numbers[i], path, handle, RandomAccess.GetLength(handle));
            _segments.Add(seg.Number, seg);
            long goodEnd = ScanSegment(seg, skipped, ref records);
            if (goodEnd < seg.Length)
            {
                if (last)
                {
                    // A torn tail: an incomplete or damaged last record (a crash during an unacknowledged append). Never served.
                    truncatedSegment = path;
                    truncatedAt = goodEnd;
                    truncatedBytes = seg.Length - goodEnd;
                    Log.TornTail(_logger, path, goodEnd, truncatedBytes, null);
                    RandomAccess.SetLength(handle, goodEnd);
                    RandomAccess.FlushToDisk(handle);
                    seg.Length = goodEnd;
                }
                else
                {
                    skipped.Add(new CorruptRegion(path, goodEnd, seg.Length - goodEnd, "no valid record up to the end of a sealed segment"));
                    Log.CorruptRegion(_logger, path, goodEnd, seg.Length - goodEnd, "unreadable tail of a sealed segment", null);
                }
            }
        }

        if (_segments.Count == 0) _active = CreateSegment(1);
        else _active = _segments[numbers[^1]];
        RecoveryReport = new RecoveryReport(numbers.Count, records, skipped, truncatedSegment, truncatedAt, truncatedBytes);
    }

    /// <summary>Scans one segment into the index. Returns the end of its last valid record.</summary>
    private long ScanSegment(Segment seg, List<CorruptRegion> skipped, ref long records)
    {
        long pos = 0, goodEnd = 0;
        while (pos < seg.Length)
        {
            string? why = TryApplyRecordAt(seg, pos, out int len);
            if (why is null)
            {
                records++;
                pos += len;
                goodEnd = pos;
                continue;
            }
            // Damage at pos. If its length prefix is plausible and a valid record follows right after it, resume there;
            // otherwise look for the next valid record by its magic.
            long next = len > 0 && pos + len < seg.Length && IsValidRecordAt(seg, pos + len) ? pos + len : FindNextValidRecord(seg, pos + 1);
            if (next < 0) return goodEnd;
            skipped.Add(new CorruptRegion(seg.Path, pos, next - pos, why));
            Log.CorruptRegion(_logger, seg.Path, pos, next - pos, why, null);
            pos = next;
        }
        return goodEnd;
    }

    /// <summary>Reads and applies the record at <paramref name="pos"/>. Returns null on success, else why not; <paramref name="len"/> is its length when the header was plausible.</summary>
    private string? TryApplyRecordAt(Segment seg, long pos, out int len)
    {
        len = 0;
        Span<byte> header = stackalloc byte[MemoryRecordCodec.HeaderSize];
        if (seg.Length - pos < header.Length) return "incomplete header";
        ReadExactly(seg.Handle, header, pos);
        if (!MemoryRecordCodec.TryReadHeader(header, _options.MaxRecordBytes, out _, out len)) return "bad header (magic, version, type or implausible length)";
        if (pos + len > seg.Length) return "incomplete record";
        byte[] buf = ArrayPool<byte>.Shared.Rent(len);
        try
        {
            var rec = buf.AsSpan(0, len);
            ReadExactly(seg.Handle, rec, pos);
            string? why = MemoryRecordCodec.TryParse(rec, out var view);
            if (why is not null) return why;
            if (!view.Fingerprint.SequenceEqual(_fingerprintUtf8))
                throw new BankFingerprintMismatchException(_bankDir, _fingerprint, Encoding.UTF8.GetString(view.Fingerprint), seg.Path, pos);
            string id = view.IdString;
            if (view.Type == RecordType.Put) _index[id] = new Location(seg.Number, pos, len);
            else _index.TryRemove(id, out _);
            return null;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    private bool IsValidRecordAt(Segment seg, long pos)
    {
        Span<byte> header = stackalloc byte[MemoryRecordCodec.HeaderSize];
        if (seg.Length - pos < header.Length) return false;
        ReadExactly(seg.Handle, header, pos);
        if (!MemoryRecordCodec.TryReadHeader(header, _options.MaxRecordBytes, out _, out int len) || pos + len > seg.Length) return false;
        byte[] buf = ArrayPool<byte>.Shared.Rent(len);
        try
        {
            var rec = buf.AsSpan(0, len);
            ReadExactly(seg.Handle, rec, pos);
            return MemoryRecordCodec.TryParse(rec, out _) is null;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    /// <summary>The offset of the next valid record at or after <paramref name="from"/>, or -1.</summary>
    private long FindNextValidRecord(Segment seg, long from)
    {
        const int Chunk = 1 << 20;
        byte[] buf = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            long pos = from;
            while (pos < seg.Length - MemoryRecordCodec.MinRecordSize + 1)
            {
                int n = (int)Math.Min(Chunk, seg.Length - pos);
                ReadExactly(seg.Handle, buf.AsSpan(0, n), pos);
                var span = buf.AsSpan(0, n);
                int at = 0;
                while (true)
                {
                    int k = span[at..].IndexOf(MemoryRecordCodec.Magic);
                    if (k < 0) break;
                    long candidate = pos + at + k;
                    if (IsValidRecordAt(seg, candidate)) return candidate;
                    at += k + 1;
                }
                if (pos + n >= seg.Length) break;
                pos += n - (MemoryRecordCodec.Magic.Length - 1);   // keep a magic that straddles the chunk boundary
            }
            return -1;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    // ---------------------------------------------------------------- reads

    public ValueTask<MemoryRecord?[]> GetManyAsync(IReadOnlyList<string> ids, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        var result = new MemoryRecord?[ids.Count];
        _segLock.EnterReadLock();
        try
        {
            ThrowIfDisposed();
            // Read in file order (segment, offset): neighbours on disk are read one after another.
            var order = new (int Segment, long Offset, int Index)[ids.Count];
            for (int i = 0; i < order.Length; i++)
                order[i] = _index.TryGetValue(ids[i], out var loc) ? (loc.Segment, loc.Offset, i) : (int.MaxValue, 0, i);
            Array.Sort(order);
            foreach (var (segment, _, i) in order)
                if (segment != int.MaxValue) result[i] = ReadLocked(ids[i]);
        }
        finally { _segLock.ExitReadLock(); }
        return ValueTask.FromResult(result);
    }

    /// <summary>Every live memory, in segment order (for rebuilding indexes and training quantizers). Records damaged after open are skipped.</summary>
    public IEnumerable<MemoryRecord> EnumerateAll()
    {
        var ids = new List<KeyValuePair<string, Location>>(_index);
        ids.Sort((a, b) => a.Value.Segment != b.Value.Segment ? a.Value.Segment.CompareTo(b.Value.Segment) : a.Value.Offset.CompareTo(b.Value.Offset));
        foreach (var (id, _) in ids)
        {
            MemoryRecord? r;
            _segLock.EnterReadLock();
            try
            {
                ThrowIfDisposed();
                r = ReadLocked(id);
            }
            finally { _segLock.ExitReadLock(); }
            if (r is not null) yield return r;
        }
    }

    private MemoryRecord? ReadLocked(string id)
    {
        if (!_index.TryGetValue(id, out var loc) || !_segments.TryGetValue(loc.Segment, out var seg)) return null;
        byte[] buf = ArrayPool<byte>.Shared.Rent(loc.Length);
        try
        {
            var rec = buf.AsSpan(0, loc.Length);
            ReadExactly(seg.Handle, rec, loc.Offset);
            var r = MemoryRecordCodec.TryDecodePut(rec, _fingerprintUtf8, id, out string? why);
            if (r is null)
            {
                Interlocked.Increment(ref _corruptReads);
                StoreMetrics.DiskCorruptReads.Add(1);
                Log.CorruptRead(_logger, id, seg.Path, loc.Offset, why!, null);
            }
            return r;
        }
        catch (EndOfStreamException)
        {
            Interlocked.Increment(ref _corruptReads);
            StoreMetrics.DiskCorruptReads.Add(1);
            Log.CorruptRead(_logger, id, seg.Path, loc.Offset, "segment shorter than the index says", null);
            return null;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    // ---------------------------------------------------------------- writes

    /// <summary>Appends the records; one fsync per segment touched. Acknowledged (returned) means durable.</summary>
    /// <exception cref="MemoryStoreException">The write or fsync failed (e.g. disk full); the unacknowledged bytes were truncated away.</exception>
    public ValueTask PutManyAsync(IReadOnlyList<MemoryRecord> records, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        if (records.Count == 0) return ValueTask.CompletedTask;
        var sizes = new int[records.Count];
        for (int i = 0; i < records.Count; i++) sizes[i] = MemoryRecordCodec.GetPutSize(_fingerprintUtf8, records[i]);
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var pending = new List<(string Id, Location Loc)>();
            for (int i = 0; i < records.Count; i++)
            {
                if (_active.Length > 0 && _active.Length + sizes[i] > _options.SegmentSizeBytes)
                {
                    CommitActive(pending);
                    Roll();
                }
                byte[] buf = ArrayPool<byte>.Shared.Rent(sizes[i]);
                try
                {
                    int len = MemoryRecordCodec.WritePut(buf, _fingerprintUtf8, records[i]);
                    pending.Add((records[i].Id, new Location(_active.Number, AppendUncommitted(buf.AsSpan(0, len), pending, i), len)));
                }
                finally { ArrayPool<byte>.Shared.Return(buf); }
            }
            CommitActive(pending);
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Writes a tombstone (durable when it returns) and drops the id from the index.</summary>
    public ValueTask<bool> DeleteAsync(string id, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        lock (_writeLock)
        {
            ThrowIfDisposed();
            if (!_index.ContainsKey(id)) return ValueTask.FromResult(false);
            int size = MemoryRecordCodec.GetTombstoneSize(_fingerprintUtf8, id);
            if (_active.Length > 0 && _active.Length + size > _options.SegmentSizeBytes) Roll();
            byte[] buf = ArrayPool<byte>.Shared.Rent(size);
            var pending = new List<(string, Location)>();
            try
            {
                int len = MemoryRecordCodec.WriteTombstone(buf, _fingerprintUtf8, id);
                AppendUncommitted(buf.AsSpan(0, len), pending, 0);
            }
            finally { ArrayPool<byte>.Shared.Return(buf); }
            CommitActive(pending);
            _index.TryRemove(id, out _);
            return ValueTask.FromResult(true);
        }
    }

    private long _durableLength = -1;   // the active segment's length at its last fsync; -1 = same as _active.Length

    /// <summary>Writes bytes after the active segment's end (not yet durable). On failure truncates back and throws.</summary>
    private long AppendUncommitted(ReadOnlySpan<byte> bytes, List<(string Id, Location Loc)> pending, int batchIndex)
    {
        if (_durableLength < 0) _durableLength = _active.Length;
        long offset = _active.Length;
        try
        {
            if (FailWriteAt?.Invoke(batchIndex) == true)
            {
                RandomAccess.Write(_active.Handle, bytes[..(bytes.Length / 2)], offset);
                throw new IOException("No space left on device (simulated)");
            }
            RandomAccess.Write(_active.Handle, bytes, offset);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            RollBackActive(pending);
            throw new MemoryStoreException(
                $"Writing to memory bank segment '{_active.Path}' failed ({ex.Message}); the unacknowledged records of this batch were discarded " +
                $"and the segment truncated back to {_active.Length} bytes.", ex);
        }
        Volatile.Write(ref _active.Length, offset + bytes.Length);
        return offset;
    }

    /// <summary>fsyncs the active segment, then publishes the pending locations to readers.</summary>
    private void CommitActive(List<(string Id, Location Loc)> pending)
    {
        if (_durableLength >= 0)
        {
            try
            {
                RandomAccess.FlushToDisk(_active.Handle);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                RollBackActive(pending);
                throw new MemoryStoreException(
                    $"fsync of memory bank segment '{_active.Path}' failed ({ex.Message}); the unacknowledged records of this batch were discarded.", ex);
            }
            _durableLength = -1;
        }
        foreach (var (id, loc) in pending) _index[id] = loc;
        pending.Clear();
    }

    private void RollBackActive(List<(string Id, Location Loc)> pending)
    {
        pending.Clear();
        long good = _durableLength >= 0 ? _durableLength : _active.Length;
        _durableLength = -1;
        try
        {
            RandomAccess.SetLength(_active.Handle, good);
            RandomAccess.FlushToDisk(_active.Handle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Could not truncate: the bytes past `good` are an unacknowledged tail that the next open truncates (CRC/length checks).
            Log.TruncateFailed(_logger, _active.Path, good, ex);
        }
        Volatile.Write(ref _active.Length, good);
    }

    private void Roll() => _active = CreateSegment(_active.Number + 1);

    private Segment CreateSegment(int number)
    {
        string path = SegmentPath(number);
        SafeFileHandle handle;
        try
        {
            handle = OpenSegmentHandle(path, FileMode.CreateNew);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MemoryStoreException($"Cannot create memory bank segment '{path}': {ex.Message}", ex);
        }
        FsyncDirectory(_segmentDir);
        var seg = new Segment(number, path, handle, 0);
        _segLock.EnterWriteLock();
        try { _segments.Add(number, seg); }
        finally { _segLock.ExitWriteLock(); }
        return seg;
    }

    // ---------------------------------------------------------------- compaction

    /// <summary>
    /// Rewrites the live records into new segments (numbered after the existing ones), fsyncs them and the directory,
    /// switches the index over, then deletes the old segments oldest first. A crash at any point loses nothing
    /// acknowledged: until the old files are gone both copies exist, and the newer segments win on open. Writers wait.
    /// </summary>
    public CompactionResult Compact()
    {
        lock (_writeLock)
        {
            ThrowIfDisposed();
            List<Segment> old;
            _segLock.EnterReadLock();
            try { old = [.. _segments.Values]; }
            finally { _segLock.ExitReadLock(); }
            long bytesBefore = 0;
            foreach (var s in old) bytesBefore += s.Length;

            var live = new List<KeyValuePair<string, Location>>(_index);
            live.Sort((a, b) => a.Value.Segment != b.Value.Segment ? a.Value.Segment.CompareTo(b.Value.Segment) : a.Value.Offset.CompareTo(b.Value.Offset));
            var moved = new List<(string Id, Location Loc)>(live.Count);
            var created = new List<Segment>();
            int corrupt = 0;
            var oldByNumber = old.ToDictionary(s => s.Number);
            try
            {
                Segment target = NewCompactionSegment(old[^1].Number + 1, created);
                foreach (var (id, loc) in live)
                {
                    byte[] buf = ArrayPool<byte>.Shared.Rent(loc.Length);
                    try
                    {
                        var rec = buf.AsSpan(0, loc.Length);
                        ReadExactly(oldByNumber[loc.Segment].Handle, rec, loc.Offset);
                        if (MemoryRecordCodec.TryDecodePut(rec, _fingerprintUtf8, id, out _) is null) { corrupt++; continue; }
                        if (target.Length > 0 && target.Length + rec.Length > _options.SegmentSizeBytes)
                            target = NewCompactionSegment(target.Number + 1, created);
                        RandomAccess.Write(target.Handle, rec, target.Length);
                        moved.Add((id, new Location(target.Number, target.Length, rec.Length)));
                        target.Length += rec.Length;
                    }
                    finally { ArrayPool<byte>.Shared.Return(buf); }
                }
                foreach (var s in created) RandomAccess.FlushToDisk(s.Handle);
                FsyncDirectory(_segmentDir);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                foreach (var s in created) { s.Handle.Dispose(); TryDelete(s.Path); }
                throw new MemoryStoreException($"Compaction of memory bank '{_bankDir}' failed ({ex.Message}); the bank is unchanged.", ex);
            }

            _segLock.EnterWriteLock();
            try
            {
                foreach (var s in created) _segments.Add(s.Number, s);
                foreach (var (id, loc) in moved) _index[id] = loc;
                foreach (var (id, _) in live)
                    if (_index.TryGetValue(id, out var l) && oldByNumber.ContainsKey(l.Segment)) _index.TryRemove(id, out _);   // corrupt: gone
                foreach (var s in old) { _segments.Remove(s.Number); s.Handle.Dispose(); }
            }
            finally { _segLock.ExitWriteLock(); }
            _active = created[^1];
            _durableLength = -1;
            foreach (var s in old) TryDelete(s.Path);   // oldest first: a crash part-way never resurrects a deleted memory
            FsyncDirectory(_segmentDir);

            long bytesAfter = 0;
            foreach (var s in created) bytesAfter += s.Length;
            Log.Compacted(_logger, _bankDir, old.Count, created.Count, bytesBefore, bytesAfter, null);
            return new CompactionResult(old.Count, created.Count, bytesBefore, bytesAfter, moved.Count, corrupt);
        }
    }

    private Segment NewCompactionSegment(int number, List<Segment> created)
    {
        string path = SegmentPath(number);
        var seg = new Segment(number, path, OpenSegmentHandle(path, FileMode.CreateNew), 0);
        created.Add(seg);
        return seg;
    }

    private void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { Log.DeleteFailed(_logger, path, ex); }
    }

    // ---------------------------------------------------------------- helpers

    private string SegmentPath(int number) =>
        System.IO.Path.Combine(_segmentDir, SegmentPrefix + number.ToString("D6", CultureInfo.InvariantCulture) + SegmentSuffix);

    private static SafeFileHandle OpenSegmentHandle(string path, FileMode mode) =>
        File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);

    private static void ReadExactly(SafeFileHandle handle, Span<byte> dest, long offset)
    {
        while (!dest.IsEmpty)
        {
            int n = RandomAccess.Read(handle, dest, offset);
            if (n <= 0) throw new EndOfStreamException();
            dest = dest[n..];
            offset += n;
        }
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int SysOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int SysFsync(int fd);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int SysClose(int fd);

    /// <summary>Makes a file creation or deletion in <paramref name="dir"/> durable (Linux; a no-op elsewhere).</summary>
    private static void FsyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux()) return;
        int fd = SysOpen(dir, 0 /* O_RDONLY */);
        if (fd < 0) return;
        SysFsync(fd);
        SysClose(fd);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        lock (_writeLock)
        {
            if (_disposed) return;
            _segLock.EnterWriteLock();
            try
            {
                _disposed = true;
                foreach (var s in _segments.Values) s.Handle.Dispose();
                _segments.Clear();
            }
            finally { _segLock.ExitWriteLock(); }
            _lockFile.Dispose();
        }
    }

    private static class Log
    {
        public static readonly Action<ILogger, string, long, long, Exception?> TornTail = LoggerMessage.Define<string, long, long>(
            LogLevel.Warning, new EventId(4101, "MemoryBankTornTail"),
            "Memory bank segment {Segment}: torn tail at offset {Offset} ({Bytes} bytes of an unacknowledged append) truncated");
        public static readonly Action<ILogger, string, long, long, string, Exception?> CorruptRegion = LoggerMessage.Define<string, long, long, string>(
            LogLevel.Error, new EventId(4102, "MemoryBankCorruptRegion"),
            "Memory bank segment {Segment}: the bytes from offset {Offset} (length {Bytes}) are not a valid record and were skipped, never served ({Reason})");
        public static readonly Action<ILogger, string, string, long, string, Exception?> CorruptRead = LoggerMessage.Define<string, string, long, string>(
            LogLevel.Error, new EventId(4103, "MemoryBankCorruptRead"),
            "Memory {MemoryId} in segment {Segment} at offset {Offset} failed verification on read and was not served ({Reason})");
        public static readonly Action<ILogger, string, long, Exception?> TruncateFailed = LoggerMessage.Define<string, long>(
            LogLevel.Error, new EventId(4104, "MemoryBankTruncateFailed"),
            "Memory bank segment {Segment}: could not truncate back to {Offset} after a failed append");
        public static readonly Action<ILogger, string, Exception?> DeleteFailed = LoggerMessage.Define<string>(
            LogLevel.Warning, new EventId(4105, "MemoryBankDeleteFailed"), "Could not delete compacted segment {Segment}");
        public static readonly Action<ILogger, string, int, int, long, long, Exception?> Compacted = LoggerMessage.Define<string, int, int, long, long>(
            LogLevel.Information, new EventId(4106, "MemoryBankCompacted"),
            "Memory bank {BankDir} compacted: {SegmentsBefore} segments -> {SegmentsAfter}, {BytesBefore} -> {BytesAfter} bytes");
    }
}
