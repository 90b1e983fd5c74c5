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

    /// <summary>
    /// Open for reading only: no lock is taken and no file is created, truncated or written (the bank may sit on a
    /// read-only mount); writes throw <see cref="MemoryBankReadOnlyException"/>; an incomplete or damaged tail is left as it
    /// is and reading stops there; <see cref="DiskShardStore.Refresh"/> picks up what writers append later.
    /// </summary>
    public bool ReadOnly { get; init; }

    /// <summary>
    /// This writer's id (letters, digits, '_' and '-', at most 64): its segments are <c>seg-{WriterId}-{n}.m3s</c> and it
    /// holds <c>writer-{WriterId}.lock</c>, so writers with different ids write one bank side by side (an Indexed Job's
    /// indexes). Null or empty: the default writer, <c>seg-{n}.m3s</c> and <c>bank.lock</c>. Every opener reads every
    /// writer's segments. Ignored when <see cref="ReadOnly"/>.
    /// </summary>
    public string? WriterId { get; init; }

    /// <summary>Null when <paramref name="writerId"/> is usable as a writer id, else why not.</summary>
    public static string? CheckWriterId(string? writerId)
    {
        if (string.IsNullOrEmpty(writerId)) return null;
        if (writerId.Length > 64) return $"writer id '{writerId}' is longer than 64 characters";
        foreach (char c in writerId)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                return $"writer id '{writerId}' may hold only ASCII letters, digits, '_' and '-'";
        return null;
    }
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
    /// <summary>
    /// Tails left unread and untouched: the last segment of another writer (or of any writer, read-only) ending in bytes
    /// that are not yet a valid record: an append in progress, or a crashed writer's torn tail that its writer truncates
    /// on its next open. <see cref="DiskShardStore.Refresh"/> reads on from there.
    /// </summary>
    public IReadOnlyList<CorruptRegion> UnreadTails { get; init; } = [];

    /// <summary>True when nothing was skipped, truncated or left unread.</summary>
    public bool Clean => SkippedRegions.Count == 0 && TruncatedBytes == 0 && UnreadTails.Count == 0;
}

/// <summary>What <see cref="DiskShardStore.Compact"/> did.</summary>
public sealed record CompactionResult(int SegmentsBefore, int SegmentsAfter, long BytesBefore, long BytesAfter, int LiveRecords, int CorruptSkipped);

/// <summary>
/// What <see cref="DiskShardStore.Refresh"/> picked up. <see cref="Upserted"/>: ids live now whose record may be new
/// (read them for their namespace and text); <see cref="Removed"/>: ids that may have stopped being live. Either may hold
/// ids whose state did not change in the end.
/// </summary>
public sealed record RefreshResult(
    int NewSegments,
    long RecordsApplied,
    IReadOnlyList<string> Upserted,
    IReadOnlyList<string> Removed,
    IReadOnlyList<CorruptRegion> SkippedRegions,
    string? ReloadReason)
{
    public static readonly RefreshResult None = new(0, 0, [], [], [], null);
    /// <summary>True when the segments were rescanned from scratch (a segment vanished or shrank: another writer compacted or rolled back).</summary>
    public bool Reloaded => ReloadReason is not null;
    public bool Changed => Upserted.Count > 0 || Removed.Count > 0;
}

/// <summary>
/// The bank's source of truth: append-only segment files (<c>segments/seg-000001.m3s</c>, or <c>seg-{writer}-000001.m3s</c>
/// for a named writer) of self-describing records (<see cref="MemoryRecordCodec"/>), an in-memory index
/// id → (segment, offset, length) rebuilt on open, positioned reads, one fsync per write batch. One writer per writer id
/// (locked by <c>bank.lock</c> or <c>writer-{id}.lock</c>); any number of read-only openers; reads run concurrently with
/// writes and refreshes. The bank is the union of its writers' logs: see docs/memory-store.md for how a tombstone of one
/// writer meets a put of another.
/// </summary>
public sealed class DiskShardStore : IMemoryStore, IDisposable
{
    private const string SegmentPrefix = "seg-", SegmentSuffix = ".m3s";

    private sealed class Segment(int key, string writer, int number, string path, SafeFileHandle handle, long length)
    {
        /// <summary>The store's own key for this segment (locations refer to it); unique across writers.</summary>
        public int Key { get; } = key;
        public string Writer { get; } = writer;
        public int Number { get; } = number;
        public string Path { get; } = path;
        public SafeFileHandle Handle { get; } = handle;
        /// <summary>Own segments: the file's length. Other writers' segments: how far they have been read (records applied, damage skipped).</summary>
        public long Length = length;
        /// <summary>Where a refresh last found bytes that were not a valid record, and the file's length then (-1: none).</summary>
        public long PendingDamageAt = -1, PendingDamageFileLength;
    }

    private readonly record struct Location(int Segment, long Offset, int Length);

    /// <summary>Everything a rescan rebuilds; swapped as a whole by a reload.</summary>
    private sealed class State
    {
        /// <summary>Live memories. Read without locks; written under the write lock.</summary>
        public readonly ConcurrentDictionary<string, Location> Index = new(StringComparer.Ordinal);
        /// <summary>id → the writer(s) whose latest record of it is a tombstone (a string, or a HashSet of them). Under the write lock.</summary>
        public readonly Dictionary<string, object> Dead = new(StringComparer.Ordinal);
        /// <summary>key → segment. Changed under the segment write lock (and the write lock); read under either.</summary>
        public readonly SortedDictionary<int, Segment> Segments = new();
        /// <summary>writer → its segments in number order. Under the write lock.</summary>
        public readonly SortedDictionary<string, List<Segment>> Logs = new(StringComparer.Ordinal);
        /// <summary>The keys of <see cref="Logs"/>, for lock-free readers (stats, /ready).</summary>
        public volatile string[] WriterNames = [];
        public int NextKey = 1;

        public List<Segment> LogFor(string writer)
        {
            if (!Logs.TryGetValue(writer, out var log))
            {
                Logs[writer] = log = [];
                WriterNames = [.. Logs.Keys];
            }
            return log;
        }

        public void DisposeHandles()
        {
            foreach (var s in Segments.Values) s.Handle.Dispose();
        }
    }

    private readonly string _bankDir, _segmentDir, _fingerprint;
    private readonly byte[] _fingerprintUtf8;
    private readonly DiskShardOptions _options;
    private readonly ILogger _logger;
    private readonly FileStream? _lockFile;
    private readonly bool _readOnly;
    private readonly string _writer;                                          // "" = the default writer
    private State _state = new();                                             // replaced under _segLock (write) and _writeLock
    private readonly ReaderWriterLockSlim _segLock = new(LockRecursionPolicy.NoRecursion);
    private readonly Lock _writeLock = new();
    private Segment _active = null!;                                          // written only under _writeLock; null when read-only
    private long _corruptReads;
    private bool _disposed;

    /// <summary>Test hook: called with the batch index before each record is written; returning true makes that write fail half-way with an IOException (a simulated ENOSPC).</summary>
    internal Func<int, bool>? FailWriteAt { get; set; }

    public string Tier => "disk";
    public string BankDir => _bankDir;
    public string Fingerprint => _fingerprint;
    public RecoveryReport RecoveryReport { get; private set; } = null!;
    public bool ReadOnly => _readOnly;
    /// <summary>This store's writer id; "" for the default writer and for a read-only store.</summary>
    public string WriterId => _writer;

    /// <summary>Live memories.</summary>
    public int Count => Volatile.Read(ref _state).Index.Count;

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
                foreach (var s in _state.Segments.Values) sum += Volatile.Read(ref s.Length);
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
            try { return _state.Segments.Count; }
            finally { _segLock.ExitReadLock(); }
        }
    }

    /// <summary>The writers whose segments this store reads (its own included), "" being the default writer. Never waits for a refresh.</summary>
    public IReadOnlyList<string> Writers => Volatile.Read(ref _state).WriterNames;

    public bool Contains(string id) => Volatile.Read(ref _state).Index.ContainsKey(id);

    private DiskShardStore(string bankDir, string fingerprint, DiskShardOptions options, ILogger logger, FileStream? lockFile, bool readOnly, string writer)
    {
        _bankDir = bankDir;
        _segmentDir = System.IO.Path.Combine(bankDir, "segments");
        _fingerprint = fingerprint;
        _fingerprintUtf8 = Encoding.UTF8.GetBytes(fingerprint);
        _options = options;
        _logger = logger;
        _lockFile = lockFile;
        _readOnly = readOnly;
        _writer = writer;
    }

    /// <summary>The lock file a writer holds: <c>bank.lock</c> for the default writer, <c>writer-{id}.lock</c> otherwise.</summary>
    public static string LockFileName(string? writerId) => string.IsNullOrEmpty(writerId) ? "bank.lock" : $"writer-{writerId}.lock";

    /// <summary>
    /// Opens (or creates) the bank in <paramref name="bankDir"/>: scans every segment of every writer, rebuilds the index,
    /// truncates a torn tail of this writer's last segment and skips corrupt records (see <see cref="RecoveryReport"/>).
    /// Read-only (<see cref="DiskShardOptions.ReadOnly"/>): creates, locks and truncates nothing; a bank directory without
    /// segments yet is an empty bank that <see cref="Refresh"/> fills once a writer has written.
    /// </summary>
    /// <exception cref="BankFingerprintMismatchException">A record belongs to another bank fingerprint.</exception>
    /// <exception cref="MemoryStoreException">The directory cannot be created or written, or the bank is open elsewhere by the same writer.</exception>
    public static DiskShardStore Open(string bankDir, string fingerprint, DiskShardOptions? options = null, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(bankDir);
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        options ??= new DiskShardOptions();
        if (options.SegmentSizeBytes < MemoryRecordCodec.MinRecordSize) throw new ArgumentOutOfRangeException(nameof(options), "SegmentSizeBytes is too small.");
        if (DiskShardOptions.CheckWriterId(options.WriterId) is { } bad) throw new ArgumentException(bad, nameof(options));
        bankDir = System.IO.Path.GetFullPath(bankDir);
        bool readOnly = options.ReadOnly;
        string writer = readOnly ? "" : options.WriterId ?? "";
        FileStream? lockFile = null;
        if (readOnly)
        {
            if (File.Exists(bankDir)) throw new MemoryStoreException($"The memory bank path '{bankDir}' is a file, not a directory.");
        }
        else
        {
            try
            {
                Directory.CreateDirectory(System.IO.Path.Combine(bankDir, "segments"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new MemoryStoreException($"Cannot create the memory bank directory '{bankDir}': {ex.Message}", ex);
            }
            string lockPath = System.IO.Path.Combine(bankDir, LockFileName(writer));
            try
            {
                lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException ex)
            {
                throw new MemoryStoreException($"The memory bank directory '{bankDir}' is not writable: {ex.Message} (open it read-only to serve it from a read-only mount)", ex);
            }
            catch (IOException ex)
            {
                throw new MemoryStoreException(
                    $"Cannot lock the memory bank '{bankDir}' for writer '{(writer.Length == 0 ? "(default)" : writer)}' ({LockFileName(writer)}; is it open in another store or process " +
                    $"with the same writer id?): {ex.Message}", ex);
            }
        }
        var store = new DiskShardStore(bankDir, fingerprint, options, logger ?? NullLogger.Instance, lockFile, readOnly, writer);
        try
        {
            lock (store._writeLock)
            {
                store._state = store.Load(out var report);
                store.RecoveryReport = report;
            }
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

    private bool IsOwn(Segment seg) => !_readOnly && seg.Writer == _writer;

    // ---------------------------------------------------------------- open / recovery

    private readonly record struct SegmentFile(string Writer, int Number, string Path);

    /// <summary>Parses <c>seg-000001.m3s</c> (default writer) and <c>seg-{writer}-000001.m3s</c>; null for anything else.</summary>
    private static SegmentFile? ParseSegmentName(string path)
    {
        var name = System.IO.Path.GetFileName(path);
        if (!name.StartsWith(SegmentPrefix, StringComparison.Ordinal) || !name.EndsWith(SegmentSuffix, StringComparison.Ordinal)) return null;
        var middle = name.AsSpan(SegmentPrefix.Length, name.Length - SegmentPrefix.Length - SegmentSuffix.Length);
        int dash = middle.LastIndexOf('-');
        string writer = dash < 0 ? "" : middle[..dash].ToString();
        if (dash >= 0 && (writer.Length == 0 || DiskShardOptions.CheckWriterId(writer) is not null)) return null;
        if (!int.TryParse(middle[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n <= 0) return null;
        return new SegmentFile(writer, n, path);
    }

    /// <summary>Every segment file, by writer then number.</summary>
    private List<SegmentFile> ListSegmentFiles()
    {
        var files = new List<SegmentFile>();
        if (!Directory.Exists(_segmentDir)) return files;
        foreach (var path in Directory.EnumerateFiles(_segmentDir, SegmentPrefix + "*" + SegmentSuffix))
            if (ParseSegmentName(path) is { } f) files.Add(f);
        files.Sort((a, b) => a.Writer != b.Writer ? string.CompareOrdinal(a.Writer, b.Writer) : a.Number.CompareTo(b.Number));
        return files;
    }

    private SafeFileHandle OpenHandleFor(string writer, string path, FileMode mode) =>
        !_readOnly && writer == _writer
            ? File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete)
            : File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    /// <summary>Scans every segment of every writer into a new state (the open, and a reload). Runs under the write lock.</summary>
    private State Load(out RecoveryReport report)
    {
        var st = new State();
        try
        {
            var files = ListSegmentFiles();
            foreach (var f in files)
            {
                var handle = OpenHandleFor(f.Writer, f.Path, FileMode.Open);
                var seg = new Segment(st.NextKey++, f.Writer, f.Number, f.Path, handle, 0);
                st.Segments.Add(seg.Key, seg);
                st.LogFor(f.Writer).Add(seg);
            }

            var skipped = new List<CorruptRegion>();
            var unread = new List<CorruptRegion>();
            long records = 0;
            string? truncatedSegment = null;
            long truncatedAt = 0, truncatedBytes = 0;
            foreach (var (writer, log) in st.Logs)
            {
                for (int i = 0; i < log.Count; i++)
                {
                    var seg = log[i];
                    bool last = i == log.Count - 1;
                    long fileLength = RandomAccess.GetLength(seg.Handle);
                    long goodEnd = ScanSegment(st, seg, 0, fileLength, skipped, ref records, null);
                    seg.Length = goodEnd;
                    if (goodEnd >= fileLength) { seg.Length = fileLength; continue; }
                    if (!last)
                    {
                        skipped.Add(new CorruptRegion(seg.Path, goodEnd, fileLength - goodEnd, "no valid record up to the end of a sealed segment"));
                        Log.CorruptRegion(_logger, seg.Path, goodEnd, fileLength - goodEnd, "unreadable tail of a sealed segment", null);
                        seg.Length = fileLength;
                    }
                    else if (IsOwn(seg))
                    {
                        // A torn tail of our own log: an incomplete or damaged last record (a crash during an unacknowledged append). Never served.
                        truncatedSegment = seg.Path;
                        truncatedAt = goodEnd;
                        truncatedBytes = fileLength - goodEnd;
                        Log.TornTail(_logger, seg.Path, goodEnd, truncatedBytes, null);
                        RandomAccess.SetLength(seg.Handle, goodEnd);
                        RandomAccess.FlushToDisk(seg.Handle);
                    }
                    else
                    {
                        // Another writer's (or, read-only, any writer's) last segment: an append in progress or a torn tail its writer
                        // truncates when it reopens. Left as it is; Refresh reads on from here once the record is complete.
                        unread.Add(new CorruptRegion(seg.Path, goodEnd, fileLength - goodEnd, "incomplete or damaged tail of a writer's last segment, left as it is"));
                        Log.UnreadTail(_logger, seg.Path, goodEnd, fileLength - goodEnd, null);
                    }
                }
            }

            if (!_readOnly)
            {
                if (!st.Logs.TryGetValue(_writer, out var own) || own.Count == 0) _active = CreateSegment(st, 1);
                else _active = own[^1];
                _durableLength = -1;
            }
            report = new RecoveryReport(files.Count, records, skipped, truncatedSegment, truncatedAt, truncatedBytes) { UnreadTails = unread };
            return st;
        }
        catch
        {
            st.DisposeHandles();
            throw;
        }
    }

    /// <summary>Scans one segment from <paramref name="from"/> to <paramref name="end"/> into the index, skipping damage. Returns the end of its last valid record.</summary>
    private long ScanSegment(State st, Segment seg, long from, long end, List<CorruptRegion> skipped, ref long records, HashSet<string>? touched)
    {
        long pos = from, goodEnd = from;
        while (pos < end)
        {
            string? why = TryApplyRecordAt(st, seg, pos, end, out int len, touched);
            if (why is null)
            {
                records++;
                pos += len;
                goodEnd = pos;
                continue;
            }
            // Damage at pos. If its length prefix is plausible and a valid record follows right after it, resume there;
            // otherwise look for the next valid record by its magic.
            long next = NextValidAfterDamage(seg, pos, len, end);
            if (next < 0) return goodEnd;
            skipped.Add(new CorruptRegion(seg.Path, pos, next - pos, why));
            Log.CorruptRegion(_logger, seg.Path, pos, next - pos, why, null);
            pos = next;
        }
        return goodEnd;
    }

    private long NextValidAfterDamage(Segment seg, long pos, int len, long end) =>
        len > 0 && pos + len < end && IsValidRecordAt(seg, pos + len, end) ? pos + len : FindNextValidRecord(seg, pos + 1, end);

    /// <summary>Reads and applies the record at <paramref name="pos"/>. Returns null on success, else why not; <paramref name="len"/> is its length when the header was plausible.</summary>
    private string? TryApplyRecordAt(State st, Segment seg, long pos, long end, out int len, HashSet<string>? touched)
    {
        len = 0;
        Span<byte> header = stackalloc byte[MemoryRecordCodec.HeaderSize];
        if (end - pos < header.Length) return "incomplete header";
        if (!TryReadExactly(seg.Handle, header, pos)) return "incomplete header";
        if (!MemoryRecordCodec.TryReadHeader(header, _options.MaxRecordBytes, out _, out len)) return "bad header (magic, version, type or implausible length)";
        if (pos + len > end) return "incomplete record";
        byte[] buf = ArrayPool<byte>.Shared.Rent(len);
        try
        {
            var rec = buf.AsSpan(0, len);
            if (!TryReadExactly(seg.Handle, rec, pos)) return "incomplete record";
            string? why = MemoryRecordCodec.TryParse(rec, out var view);
            if (why is not null) return why;
            if (!view.Fingerprint.SequenceEqual(_fingerprintUtf8))
                throw new BankFingerprintMismatchException(_bankDir, _fingerprint, Encoding.UTF8.GetString(view.Fingerprint), seg.Path, pos);
            string id = view.IdString;
            if (view.Type == RecordType.Put) ApplyPut(st, id, new Location(seg.Key, pos, len), seg.Writer, touched);
            else ApplyTombstone(st, id, seg.Writer, touched);
            return null;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    // ---------------------------------------------------------------- the union of the writers' logs

    // Within one writer's log a later record of an id wins. Across writers (no clock orders them) the result depends only on
    // each writer's latest record of the id, never on the order in which the logs were read: an id is live when no writer's
    // latest record of it is a tombstone and some writer has put it (a delete by any writer wins). When several writers hold
    // a live copy, the copy of the smallest writer id is served (the same text, as ids derive from it).

    private void ApplyPut(State st, string id, Location loc, string writer, HashSet<string>? touched)
    {
        touched?.Add(id);
        if (st.Dead.TryGetValue(id, out var dead))
        {
            if (dead is string w)
            {
                if (w != writer) return;                       // still deleted by another writer
                st.Dead.Remove(id);
            }
            else
            {
                var set = (HashSet<string>)dead;
                set.Remove(writer);
                if (set.Count > 0) return;
                st.Dead.Remove(id);
            }
        }
        else if (st.Index.TryGetValue(id, out var cur) && st.Segments.TryGetValue(cur.Segment, out var curSeg)
                 && curSeg.Writer != writer && string.CompareOrdinal(writer, curSeg.Writer) > 0)
            return;                                             // another writer's copy is served
        st.Index[id] = loc;
    }

    private static void ApplyTombstone(State st, string id, string writer, HashSet<string>? touched)
    {
        touched?.Add(id);
        st.Index.TryRemove(id, out _);
        if (!st.Dead.TryGetValue(id, out var dead)) st.Dead[id] = writer;
        else if (dead is string w) { if (w != writer) st.Dead[id] = new HashSet<string>(StringComparer.Ordinal) { w, writer }; }
        else ((HashSet<string>)dead).Add(writer);
    }

    private static bool DeadBy(State st, string id, string writer) =>
        st.Dead.TryGetValue(id, out var dead) && (dead is string w ? w == writer : ((HashSet<string>)dead).Contains(writer));

    private bool IsValidRecordAt(Segment seg, long pos, long end)
    {
        Span<byte> header = stackalloc byte[MemoryRecordCodec.HeaderSize];
        if (end - pos < header.Length || !TryReadExactly(seg.Handle, header, pos)) return false;
        if (!MemoryRecordCodec.TryReadHeader(header, _options.MaxRecordBytes, out _, out int len) || pos + len > end) return false;
        byte[] buf = ArrayPool<byte>.Shared.Rent(len);
        try
        {
            var rec = buf.AsSpan(0, len);
            return TryReadExactly(seg.Handle, rec, pos) && MemoryRecordCodec.TryParse(rec, out _) is null;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    /// <summary>The offset of the next valid record at or after <paramref name="from"/> and before <paramref name="end"/>, or -1.</summary>
    private long FindNextValidRecord(Segment seg, long from, long end)
    {
        const int Chunk = 1 << 20;
        byte[] buf = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            long pos = from;
            while (pos < end - MemoryRecordCodec.MinRecordSize + 1)
            {
                int n = (int)Math.Min(Chunk, end - pos);
                if (!TryReadExactly(seg.Handle, buf.AsSpan(0, n), pos)) return -1;
                var span = buf.AsSpan(0, n);
                int at = 0;
                while (true)
                {
                    int k = span[at..].IndexOf(MemoryRecordCodec.Magic);
                    if (k < 0) break;
                    long candidate = pos + at + k;
                    if (IsValidRecordAt(seg, candidate, end)) return candidate;
                    at += k + 1;
                }
                if (pos + n >= end) break;
                pos += n - (MemoryRecordCodec.Magic.Length - 1);   // keep a magic that straddles the chunk boundary
            }
            return -1;
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    // ---------------------------------------------------------------- refresh (other writers' appends)

    /// <summary>
    /// Picks up what other writers wrote since the open or the last refresh (every writer's, when read-only): new segment
    /// files and records appended to known ones. Reading stops at bytes that are not yet a valid record (an append in
    /// progress: retried next time, so a half-written record is picked up once complete) and at a writer's unfinished
    /// segment before its next one (a writer's records apply in its order). Bytes that stay invalid across two refreshes
    /// while the file does not grow are damage: skipped when a valid record follows them or the segment is sealed, as at
    /// open. A segment that vanished or shrank (its writer compacted, or truncated an unacknowledged tail) makes this
    /// refresh rescan every segment. Reads go on meanwhile; writes of this store wait.
    /// </summary>
    public RefreshResult Refresh()
    {
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var st = _state;
            var files = ListSegmentFiles();
            var present = new HashSet<string>(files.Select(f => f.Path), StringComparer.Ordinal);
            string? reload = null;
            foreach (var seg in st.Segments.Values)
            {
                if (IsOwn(seg)) continue;
                if (!present.Contains(seg.Path)) { reload = $"segment {System.IO.Path.GetFileName(seg.Path)} was removed"; break; }
                if (RandomAccess.GetLength(seg.Handle) < seg.Length) { reload = $"segment {System.IO.Path.GetFileName(seg.Path)} shrank"; break; }
            }
            var known = new HashSet<string>(st.Segments.Values.Select(s => s.Path), StringComparer.Ordinal);
            var fresh = files.Where(f => !known.Contains(f.Path) && (_readOnly || f.Writer != _writer)).ToList();
            if (reload is null)
                foreach (var f in fresh)
                    if (st.Logs.TryGetValue(f.Writer, out var log) && log.Count > 0 && f.Number < log[^1].Number)
                    {
                        reload = $"segment {System.IO.Path.GetFileName(f.Path)} appeared before {System.IO.Path.GetFileName(log[^1].Path)}";
                        break;
                    }
            if (reload is not null) return Reload(reload);

            int added = 0;
            foreach (var f in fresh)
            {
                SafeFileHandle handle;
                try { handle = OpenHandleFor(f.Writer, f.Path, FileMode.Open); }
                catch (FileNotFoundException) { continue; }            // removed since the listing: the next refresh sees why
                catch (DirectoryNotFoundException) { continue; }
                var seg = new Segment(st.NextKey++, f.Writer, f.Number, f.Path, handle, 0);
                _segLock.EnterWriteLock();
                try { st.Segments.Add(seg.Key, seg); }
                finally { _segLock.ExitWriteLock(); }
                st.LogFor(f.Writer).Add(seg);
                added++;
            }

            var touched = new HashSet<string>(StringComparer.Ordinal);
            var skipped = new List<CorruptRegion>();
            long records = 0;
            foreach (var (writer, log) in st.Logs)
                if (_readOnly || writer != _writer) TailLog(st, log, touched, skipped, ref records);

            if (records > 0) StoreMetrics.DiskRefreshRecords.Add(records);
            if (records > 0 || added > 0) Log.Refreshed(_logger, _bankDir, added, records, null);
            if (touched.Count == 0 && added == 0 && skipped.Count == 0) return RefreshResult.None;
            var upserted = new List<string>();
            var removed = new List<string>();
            foreach (var id in touched) (st.Index.ContainsKey(id) ? upserted : removed).Add(id);
            return new RefreshResult(added, records, upserted, removed, skipped, null);
        }
    }

    /// <summary>Reads one writer's log on from where the last scan stopped, in its order; stops at the first record not yet complete.</summary>
    private void TailLog(State st, List<Segment> log, HashSet<string> touched, List<CorruptRegion> skipped, ref long records)
    {
        for (int i = 0; i < log.Count; i++)
        {
            var seg = log[i];
            bool sealedSeg = i < log.Count - 1;
            long fileLength = RandomAccess.GetLength(seg.Handle);
            while (seg.Length < fileLength)
            {
                long pos = seg.Length;
                string? why = TryApplyRecordAt(st, seg, pos, fileLength, out int len, touched);
                if (why is null)
                {
                    records++;
                    Volatile.Write(ref seg.Length, pos + len);
                    seg.PendingDamageAt = -1;
                    continue;
                }
                if (seg.PendingDamageAt != pos || seg.PendingDamageFileLength != fileLength)
                {
                    // Maybe an append in progress: look again next time.
                    seg.PendingDamageAt = pos;
                    seg.PendingDamageFileLength = fileLength;
                    return;
                }
                // The same bytes were invalid last time and the file has not grown since: damage.
                long next = NextValidAfterDamage(seg, pos, len, fileLength);
                if (next < 0 && !sealedSeg) return;                     // a torn tail of a writer's last segment: its writer truncates it
                long to = next < 0 ? fileLength : next;
                skipped.Add(new CorruptRegion(seg.Path, pos, to - pos, why));
                Log.CorruptRegion(_logger, seg.Path, pos, to - pos, why, null);
                Volatile.Write(ref seg.Length, to);
                seg.PendingDamageAt = -1;
            }
            if (seg.Length < fileLength) return;
        }
    }

    /// <summary>Rescans every segment into a new state and swaps it in (under the write lock). Returns the difference.</summary>
    private RefreshResult Reload(string reason)
    {
        var old = _state;
        var oldIndex = new Dictionary<string, (string Path, long Offset)>(old.Index.Count, StringComparer.Ordinal);
        foreach (var (id, loc) in old.Index)
            if (old.Segments.TryGetValue(loc.Segment, out var s)) oldIndex[id] = (s.Path, loc.Offset);
        var st = Load(out var report);
        _segLock.EnterWriteLock();
        try { Volatile.Write(ref _state, st); }
        finally { _segLock.ExitWriteLock(); }
        old.DisposeHandles();

        var upserted = new List<string>();
        foreach (var (id, loc) in st.Index)
            if (!oldIndex.TryGetValue(id, out var was) || was.Offset != loc.Offset || was.Path != st.Segments[loc.Segment].Path) upserted.Add(id);
        var removed = oldIndex.Keys.Where(id => !st.Index.ContainsKey(id)).ToList();
        Log.Reloaded(_logger, _bankDir, reason, null);
        return new RefreshResult(0, report.RecordsScanned, upserted, removed, report.SkippedRegions, reason);
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
            var st = _state;
            // Read in file order (segment, offset): neighbours on disk are read one after another.
            var order = new (int Segment, long Offset, int Index)[ids.Count];
            for (int i = 0; i < order.Length; i++)
                order[i] = st.Index.TryGetValue(ids[i], out var loc) ? (loc.Segment, loc.Offset, i) : (int.MaxValue, 0, i);
            Array.Sort(order);
            foreach (var (segment, _, i) in order)
                if (segment != int.MaxValue) result[i] = ReadLocked(st, ids[i]);
        }
        finally { _segLock.ExitReadLock(); }
        return ValueTask.FromResult(result);
    }

    /// <summary>Every live memory, in segment order (for rebuilding indexes and training quantizers). Records damaged after open are skipped.</summary>
    public IEnumerable<MemoryRecord> EnumerateAll()
    {
        var ids = new List<KeyValuePair<string, Location>>(Volatile.Read(ref _state).Index);
        ids.Sort((a, b) => a.Value.Segment != b.Value.Segment ? a.Value.Segment.CompareTo(b.Value.Segment) : a.Value.Offset.CompareTo(b.Value.Offset));
        foreach (var (id, _) in ids)
        {
            MemoryRecord? r;
            _segLock.EnterReadLock();
            try
            {
                ThrowIfDisposed();
                r = ReadLocked(_state, id);
            }
            finally { _segLock.ExitReadLock(); }
            if (r is not null) yield return r;
        }
    }

    private MemoryRecord? ReadLocked(State st, string id)
    {
        if (!st.Index.TryGetValue(id, out var loc) || !st.Segments.TryGetValue(loc.Segment, out var seg)) return null;
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

    private void ThrowIfReadOnly()
    {
        if (_readOnly) throw new MemoryBankReadOnlyException(_bankDir);
    }

    /// <summary>Appends the records; one fsync per segment touched. Acknowledged (returned) means durable.</summary>
    /// <exception cref="MemoryStoreException">The write or fsync failed (e.g. disk full); the unacknowledged bytes were truncated away.</exception>
    /// <exception cref="MemoryBankReadOnlyException">The store is read-only.</exception>
    public ValueTask PutManyAsync(IReadOnlyList<MemoryRecord> records, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        ThrowIfReadOnly();
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
                    pending.Add((records[i].Id, new Location(_active.Key, AppendUncommitted(buf.AsSpan(0, len), pending, i), len)));
                }
                finally { ArrayPool<byte>.Shared.Return(buf); }
            }
            CommitActive(pending);
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Writes a tombstone (durable when it returns) and drops the id from the index.</summary>
    /// <exception cref="MemoryBankReadOnlyException">The store is read-only.</exception>
    public ValueTask<bool> DeleteAsync(string id, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        ThrowIfReadOnly();
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var st = _state;
            if (!st.Index.ContainsKey(id)) return ValueTask.FromResult(false);
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
            ApplyTombstone(st, id, _writer, null);
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
        var st = _state;
        foreach (var (id, loc) in pending) ApplyPut(st, id, loc, _writer, null);
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

    private void Roll() => _active = CreateSegment(_state, _active.Number + 1);

    /// <summary>Creates this writer's segment <paramref name="number"/> and adds it to <paramref name="st"/>.</summary>
    private Segment CreateSegment(State st, int number)
    {
        string path = SegmentPath(number);
        SafeFileHandle handle;
        try
        {
            handle = OpenHandleFor(_writer, path, FileMode.CreateNew);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MemoryStoreException($"Cannot create memory bank segment '{path}': {ex.Message}", ex);
        }
        FsyncDirectory(_segmentDir);
        var seg = new Segment(st.NextKey++, _writer, number, path, handle, 0);
        _segLock.EnterWriteLock();
        try { st.Segments.Add(seg.Key, seg); }
        finally { _segLock.ExitWriteLock(); }
        st.LogFor(_writer).Add(seg);
        return seg;
    }

    // ---------------------------------------------------------------- compaction

    /// <summary>
    /// Rewrites this writer's live records into new segments (numbered after its existing ones), fsyncs them and the
    /// directory, switches the index over, then deletes its old segments oldest first. A crash at any point loses nothing
    /// acknowledged: until the old files are gone both copies exist, and the newer segments win on open. Writers wait.
    /// Other writers' segments are left alone; while the bank has any, this writer's tombstones are copied too (they may
    /// delete another writer's copy of a memory).
    /// </summary>
    public CompactionResult Compact()
    {
        ThrowIfReadOnly();
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var st = _state;
            List<Segment> old = [.. st.Logs[_writer]];
            var oldByKey = old.ToDictionary(s => s.Key);
            long bytesBefore = 0;
            foreach (var s in old) bytesBefore += s.Length;
            bool otherWriters = st.Logs.Keys.Any(w => w != _writer) || ListSegmentFiles().Any(f => f.Writer != _writer);   // the folder too: a writer not read yet
            var tombstones = otherWriters ? st.Dead.Keys.Where(id => DeadBy(st, id, _writer)).ToList() : [];

            var live = st.Index.Where(kv => oldByKey.ContainsKey(kv.Value.Segment)).ToList();
            live.Sort((a, b) => a.Value.Segment != b.Value.Segment ? a.Value.Segment.CompareTo(b.Value.Segment) : a.Value.Offset.CompareTo(b.Value.Offset));
            var moved = new List<(string Id, Segment Seg, long Offset, int Length)>(live.Count);
            var created = new List<Segment>();
            int corrupt = 0;
            try
            {
                Segment target = NewCompactionSegment(st, old[^1].Number + 1, created);
                void Put(ReadOnlySpan<byte> rec, string? id)
                {
                    if (target.Length > 0 && target.Length + rec.Length > _options.SegmentSizeBytes)
                        target = NewCompactionSegment(st, target.Number + 1, created);
                    RandomAccess.Write(target.Handle, rec, target.Length);
                    if (id is not null) moved.Add((id, target, target.Length, rec.Length));
                    target.Length += rec.Length;
                }
                foreach (var (id, loc) in live)
                {
                    byte[] buf = ArrayPool<byte>.Shared.Rent(loc.Length);
                    try
                    {
                        var rec = buf.AsSpan(0, loc.Length);
                        ReadExactly(oldByKey[loc.Segment].Handle, rec, loc.Offset);
                        if (MemoryRecordCodec.TryDecodePut(rec, _fingerprintUtf8, id, out _) is null) { corrupt++; continue; }
                        Put(rec, id);
                    }
                    finally { ArrayPool<byte>.Shared.Return(buf); }
                }
                foreach (var id in tombstones)
                {
                    var rec = new byte[MemoryRecordCodec.GetTombstoneSize(_fingerprintUtf8, id)];
                    MemoryRecordCodec.WriteTombstone(rec, _fingerprintUtf8, id);
                    Put(rec, null);
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
                foreach (var s in created) st.Segments.Add(s.Key, s);
                foreach (var (id, seg, offset, length) in moved) st.Index[id] = new Location(seg.Key, offset, length);
                foreach (var (id, _) in live)
                    if (st.Index.TryGetValue(id, out var l) && oldByKey.ContainsKey(l.Segment)) st.Index.TryRemove(id, out _);   // corrupt: gone
                foreach (var s in old) { st.Segments.Remove(s.Key); s.Handle.Dispose(); }
            }
            finally { _segLock.ExitWriteLock(); }
            st.Logs[_writer] = created;
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

    private Segment NewCompactionSegment(State st, int number, List<Segment> created)
    {
        string path = SegmentPath(number);
        var seg = new Segment(st.NextKey++, _writer, number, path, OpenHandleFor(_writer, path, FileMode.CreateNew), 0);
        created.Add(seg);
        return seg;
    }

    private void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { Log.DeleteFailed(_logger, path, ex); }
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>This writer's segment file <paramref name="number"/>.</summary>
    private string SegmentPath(int number) => System.IO.Path.Combine(_segmentDir, SegmentFileName(_writer, number));

    /// <summary><c>seg-000001.m3s</c> for the default writer (""), <c>seg-{writer}-000001.m3s</c> otherwise.</summary>
    public static string SegmentFileName(string? writerId, int number) =>
        SegmentPrefix + (string.IsNullOrEmpty(writerId) ? "" : writerId + "-") + number.ToString("D6", CultureInfo.InvariantCulture) + SegmentSuffix;

    private static void ReadExactly(SafeFileHandle handle, Span<byte> dest, long offset)
    {
        if (!TryReadExactly(handle, dest, offset)) throw new EndOfStreamException();
    }

    /// <summary>False when the file ends first (another writer's file may be shorter than a length read a moment ago).</summary>
    private static bool TryReadExactly(SafeFileHandle handle, Span<byte> dest, long offset)
    {
        while (!dest.IsEmpty)
        {
            int n = RandomAccess.Read(handle, dest, offset);
            if (n <= 0) return false;
            dest = dest[n..];
            offset += n;
        }
        return true;
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
                _state.DisposeHandles();
                _state.Segments.Clear();
            }
            finally { _segLock.ExitWriteLock(); }
            _lockFile?.Dispose();
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
        public static readonly Action<ILogger, string, long, long, Exception?> UnreadTail = LoggerMessage.Define<string, long, long>(
            LogLevel.Information, new EventId(4107, "MemoryBankUnreadTail"),
            "Memory bank segment {Segment}: the {Bytes} bytes from offset {Offset} are not (yet) a valid record; left as they are and read once complete");
        public static readonly Action<ILogger, string, int, long, Exception?> Refreshed = LoggerMessage.Define<string, int, long>(
            LogLevel.Information, new EventId(4108, "MemoryBankRefreshed"),
            "Memory bank {BankDir} refreshed: {NewSegments} new segments, {Records} records picked up");
        public static readonly Action<ILogger, string, string, Exception?> Reloaded = LoggerMessage.Define<string, string>(
            LogLevel.Information, new EventId(4109, "MemoryBankReloaded"),
            "Memory bank {BankDir} rescanned from scratch: {Reason}");
    }
}

/// <summary>A write (ingest, delete, compaction) reached a bank that is open read-only.</summary>
public sealed class MemoryBankReadOnlyException(string bankDir)
    : MemoryStoreException($"The memory bank '{bankDir}' is open read-only (Memory3:Bank:ReadOnly): memories cannot be written or deleted here. " +
        "Write through a writer of this bank (the ingestion Job, or a server or `memory3 ingest` that opens it read-write).")
{
    public string BankDir { get; } = bankDir;
}
