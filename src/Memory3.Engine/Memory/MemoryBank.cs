using System.Diagnostics;
using System.Text.Json;
using Memory3.Engine.Memory.Encode;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Memory.Quantize;
using Memory3.Engine.Memory.Retrieve;
using Memory3.Engine.Memory.Store;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Memory3.Engine.Memory;

public sealed record MemoryBankOptions
{
    /// <summary>StackExchange.Redis configuration string for the hot tier; null: no Redis tier.</summary>
    public string? Redis { get; init; }
    public TimeSpan RedisTtl { get; init; } = TimeSpan.FromHours(1);
    /// <summary>Bound of the in-process tier of dequantized memories, in bytes; 0 turns the tier off.</summary>
    public long ProcessCacheBytes { get; init; } = 512L << 20;
    /// <summary>References encoded per forward batch while ingesting.</summary>
    public int EncodeBatch { get; init; } = 16;
    /// <summary>The embedder for retrieval; null: all-MiniLM-L6-v2.</summary>
    public IEmbedder? Embedder { get; init; }
    /// <summary>
    /// Open the bank for reading only (a serving pod on a read-only shard volume): nothing in the bank folder is created,
    /// locked or changed, the retrieval index is loaded (or rebuilt in memory) and never saved, and ingest and delete throw
    /// <see cref="MemoryBankReadOnlyException"/>. New records of the bank's writers arrive through <see cref="MemoryBank.Refresh"/>.
    /// </summary>
    public bool ReadOnly { get; init; }
    /// <summary>This writer's id (see <see cref="DiskShardOptions.WriterId"/>): its own segments and its own index folder
    /// <c>index-{id}</c>, so writers with different ids ingest into one bank at once. Null: the default writer.</summary>
    public string? WriterId { get; init; }
    /// <summary>How often a background loop calls <see cref="MemoryBank.Refresh"/>; zero or negative: never (call it yourself).</summary>
    public TimeSpan RefreshInterval { get; init; }
    public ILogger? Logger { get; init; }
}

/// <summary>What one <see cref="MemoryBank.Refresh"/> did: records picked up from the disk, references (re)indexed, references removed.</summary>
public sealed record BankRefreshResult(long RecordsRead, int Indexed, int Embedded, int Removed, bool Reloaded)
{
    public static readonly BankRefreshResult None = new(0, 0, 0, 0, false);
}

public sealed record IngestProgress(int Documents, int References, int Skipped, int Failed, double ReferencesPerSecond);
public sealed record IngestResult(int Documents, int References, int Skipped, IReadOnlyList<(string Source, string Error)> Errors, double Seconds)
{
    public double ReferencesPerSecond => Seconds > 0 ? References / Seconds : 0;
}

public sealed record BankStats(int References, long BytesOnDisk, int Segments, string Fingerprint, string PayloadMode, int BytesPerMemoryPayload, string? QuantizerDescription)
{
    /// <summary>True when the bank is open read-only (it follows its writers by refreshing).</summary>
    public bool ReadOnly { get; init; }
    /// <summary>The writers whose segments the bank holds ("" is the default writer).</summary>
    public IReadOnlyList<string> Writers { get; init; } = [];
    /// <summary>When the last refresh finished (null: none yet), and refreshes that failed so far.</summary>
    public DateTimeOffset? RefreshedAt { get; init; }
    public long RefreshErrors { get; init; }
}

/// <summary>
/// A memory bank bound to one model: disk shards (the source of truth), an optional Redis hot tier, the in-process
/// tier, the retrieval index and the codec, under one fingerprint. Encoding (ingest) runs on the caller's thread
/// and uses the model's tensors: call it from the thread that owns the model.
/// </summary>
public sealed class MemoryBank : IMemorySource, IDisposable
{
    public const string ManifestFile = "bank.json";

    private readonly CausalLM _model;
    private readonly ITokenizer _tokenizer;
    private readonly MemoryBankOptions _options;
    private readonly DiskShardStore _disk;
    private readonly ConnectionMultiplexer? _redisConnection;
    private readonly InProcessMemoryCache? _process;
    private readonly TieredMemoryStore _tiers;
    private readonly HybridRetriever _retriever;
    private readonly IEmbedder _embedder;
    private readonly bool _ownsEmbedder;
    private readonly MemoryShape _shape;
    private readonly QuantizerSet? _quantizer;
    private readonly IMemoryDecoder _decoder;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _refreshGate = new(1, 1);
    private readonly CancellationTokenSource _refreshStop = new();
    private readonly Task? _refreshLoop;
    private long _refreshErrors;
    private DateTimeOffset? _refreshedAt;
    private MemoryEncoder? _encoder;

    /// <summary>Open read-only (<see cref="MemoryBankOptions.ReadOnly"/>).</summary>
    public bool ReadOnly => _options.ReadOnly;
    /// <summary>This writer's id; "" for the default writer and read-only.</summary>
    public string WriterId => _disk.WriterId;

    public string Directory { get; }
    /// <summary>Model weights + memory configuration: what memory ids are derived from.</summary>
    public string ModelFingerprint { get; }
    /// <summary>Model fingerprint + quantizer: what records and Redis keys carry.</summary>
    public string Fingerprint { get; }
    public MemoryShape Shape => _shape;
    public QuantizerSet? Quantizer => _quantizer;
    public HybridRetriever Retriever => _retriever;
    public TieredMemoryStore Tiers => _tiers;
    public DiskShardStore Disk => _disk;
    /// <summary>The Redis tier, when one is configured.</summary>
    public RedisMemoryStore? RedisStore { get; private set; }

    private MemoryBank(string dir, CausalLM model, ITokenizer tokenizer, MemoryBankOptions options)
    {
        Directory = dir; _model = model; _tokenizer = tokenizer; _options = options;
        var mem = model.Config.Memory ?? throw new ModelLoadException($"{model.Directory}: {model.Config.Architecture} has no memory configuration; a bank needs a Memory3ForCausalLM model");
        _shape = new MemoryShape(mem.MemoryLayers, mem.MemoryKvHeads, mem.MemoryTokensPerHead, model.Config.HeadDim);
        _logger = options.Logger ?? NullLogger.Instance;
        if (!options.ReadOnly)
        {
            System.IO.Directory.CreateDirectory(dir);
            if (string.IsNullOrEmpty(options.WriterId)) RecoverInterruptedQuantization(dir);
            else if (System.IO.Directory.Exists(Path.Combine(dir, BackupSegments)) || System.IO.Directory.Exists(Path.Combine(dir, QuantizingFolder)))
                throw new MemoryStoreException($"{dir}: a quantizer conversion is running or was interrupted ({QuantizingFolder} or {BackupSegments} exists); " +
                    "writer '" + options.WriterId + "' does not write during one. Let it finish, or open the bank once with the default writer to roll it back or forward.");
        }
        ModelFingerprint = BankIdentity.Fingerprint(BankIdentity.WeightsDigest(model.Directory), mem, model.Config.HeadDim, null, BankIdentity.RopeKey(model.Config));
        var qPath = Path.Combine(dir, QuantizerSet.FileName);
        _quantizer = File.Exists(qPath) ? QuantizerSet.Load(qPath) : null;
        Fingerprint = _quantizer is null ? ModelFingerprint : BankIdentity.Fingerprint(ModelFingerprint, mem, model.Config.HeadDim, _quantizer.Fingerprint);
        CheckManifest();
        _decoder = MemoryCodec.For(_shape, _quantizer);
        _disk = DiskShardStore.Open(dir, Fingerprint, new DiskShardOptions { ReadOnly = options.ReadOnly, WriterId = options.WriterId }, _logger);
        try
        {
            if (options.Redis is { } redis)
            {
                var cfg = ConfigurationOptions.Parse(redis);
                cfg.AbortOnConnectFail = false;
                cfg.BacklogPolicy = BacklogPolicy.FailFast;
                _redisConnection = ConnectionMultiplexer.Connect(cfg);
            }
            var redisStore = _redisConnection is null ? null : new RedisMemoryStore(_redisConnection, Fingerprint, new RedisMemoryStoreOptions { Ttl = options.RedisTtl });
            _process = options.ProcessCacheBytes > 0 ? new InProcessMemoryCache(new InProcessMemoryCacheOptions { SizeLimitBytes = options.ProcessCacheBytes }) : null;
            RedisStore = redisStore;
            _tiers = new TieredMemoryStore(_disk, _decoder, redisStore, _process);
            _ownsEmbedder = options.Embedder is null;
            _embedder = options.Embedder ?? new MiniLmEmbedder();
            _retriever = OpenRetriever();
            if (!options.ReadOnly) WriteManifest();
            if (options.RefreshInterval > TimeSpan.Zero) _refreshLoop = Task.Run(() => RefreshLoopAsync(options.RefreshInterval));
        }
        catch
        {
            _retriever?.Dispose();
            if (options.Embedder is null) _embedder?.Dispose();
            _process?.Dispose();
            _disk.Dispose();
            _redisConnection?.Dispose();
            throw;
        }
    }

    public static MemoryBank Open(string bankDir, CausalLM model, ITokenizer tokenizer, MemoryBankOptions? options = null) =>
        new(bankDir, model, tokenizer, options ?? new MemoryBankOptions());

    /// <summary>
    /// The retrieval index: this writer's saved index (<c>index</c>, or <c>index-{writer}</c>), else the largest other saved
    /// index of the bank, brought in line with the disk records when it is not. Records missing from it take their vectors
    /// from the bank's other saved indexes (the other writers') where those hold them, so a bank written by several
    /// writers is not re-embedded; only the rest are embedded. Saved into this writer's folder unless read-only.
    /// </summary>
    private HybridRetriever OpenRetriever()
    {
        string own = HybridRetriever.IndexNameFor(_options.ReadOnly ? null : _options.WriterId);
        var names = HybridRetriever.IndexNames(Directory).Where(n => n != own).ToList();
        HybridRetriever? r = HybridRetriever.Open(Directory, _embedder, null, own);
        var records = () => _disk.EnumerateAll().Select(x => (x.Id, x.Namespace, x.Text));
        if (!r.NeedsRebuild && r.IsInSync(records())) return r;

        var donors = new List<HybridRetriever>();
        try
        {
            foreach (var name in names)
            {
                var d = HybridRetriever.Open(Directory, _embedder, null, name);
                if (d.NeedsRebuild) d.Dispose();
                else donors.Add(d);
            }
            donors.Sort((a, b) => b.Count.CompareTo(a.Count));
            if (r.NeedsRebuild && donors.Count > 0)
            {
                // Start from the largest other index (its graph loads as it is), and save into our own folder.
                r.Dispose();
                r = donors[0];
                donors.RemoveAt(0);
                r.IndexDirectory = Path.Combine(Directory, own);
            }
            if (r.NeedsRebuild || !r.IsInSync(records()))
            {
                var result = r.Rebuild(records(), null, (id, ns, text) => donors.Select(d => d.TryGetVector(id, ns, text)).FirstOrDefault(v => v is not null));
                Log.IndexRebuilt(_logger, Directory, result.Kept, result.Embedded, result.Removed, null);
                if (!_options.ReadOnly) r.Save();
            }
            return r;
        }
        catch
        {
            r?.Dispose();
            throw;
        }
        finally
        {
            foreach (var d in donors) d.Dispose();
        }
    }

    /// <summary>
    /// Picks up what the bank's writers wrote since the open or the last refresh (<see cref="DiskShardStore.Refresh"/>: records
    /// appended, new segments, another writer's compaction) and brings the retrieval index and the in-process tier in line:
    /// new references are indexed (embedded off the request path; searches go on meanwhile), removed ones dropped. A
    /// half-written record is not picked up until it is complete. One refresh at a time; a read-only bank's background
    /// loop calls this every <see cref="MemoryBankOptions.RefreshInterval"/>.
    /// </summary>
    public BankRefreshResult Refresh(CancellationToken ct = default)
    {
        _refreshGate.Wait(ct);
        try
        {
            var r = _disk.Refresh();
            _refreshedAt = DateTimeOffset.UtcNow;
            if (!r.Changed) return BankRefreshResult.None with { RecordsRead = r.RecordsApplied, Reloaded = r.Reloaded };
            int removed = 0;
            foreach (var id in r.Removed)
            {
                _process?.Remove(id);
                if (_retriever.Remove(id)) removed++;
            }
            int indexed = 0, embedded = 0;
            for (int i = 0; i < r.Upserted.Count; i += 256)
            {
                ct.ThrowIfCancellationRequested();
                var ids = r.Upserted.Skip(i).Take(256).ToList();
                foreach (var id in ids) _process?.Remove(id);
                var recs = _disk.GetManyAsync(ids, ct).AsTask().GetAwaiter().GetResult();
                var refs = recs.OfType<MemoryRecord>().Select(x => (x.Id, x.Namespace, x.Text)).ToList();
                embedded += _retriever.Add(refs, null);
                indexed += refs.Count;
            }
            Log.Refreshed(_logger, Directory, r.RecordsApplied, indexed, embedded, removed, null);
            return new BankRefreshResult(r.RecordsApplied, indexed, embedded, removed, r.Reloaded);
        }
        finally { _refreshGate.Release(); }
    }

    private async Task RefreshLoopAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_refreshStop.Token))
            {
                try { Refresh(_refreshStop.Token); }
                catch (OperationCanceledException) when (_refreshStop.IsCancellationRequested) { return; }
                catch (Exception e)
                {
                    Interlocked.Increment(ref _refreshErrors);
                    BankMetrics.RefreshErrors.Add(1);
                    Log.RefreshFailed(_logger, Directory, e);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    private sealed record Manifest(int Format, string Fingerprint, string ModelFingerprint, string ModelDirectory, string? Quantizer, string Created);

    private void CheckManifest()
    {
        var path = Path.Combine(Directory, ManifestFile);
        if (!File.Exists(path)) return;
        Manifest? m;
        try { m = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ModelLoadException($"{path}: malformed bank manifest ({e.Message})", e); }
        if (m is not null && m.ModelFingerprint != ModelFingerprint)
            throw new BankFingerprintMismatchException(Directory, Fingerprint, m.Fingerprint, path, 0);
    }

    private void WriteManifest()
    {
        var path = Path.Combine(Directory, ManifestFile);
        var m = new Manifest(1, Fingerprint, ModelFingerprint, Path.GetFullPath(_model.Directory), _quantizer?.Fingerprint, DateTime.UtcNow.ToString("O"));
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];   // writers with different ids may open the bank at once
        File.WriteAllText(tmp, JsonSerializer.Serialize(m, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, path, overwrite: true);
    }

    private MemoryEncoder Encoder => _encoder ??= new MemoryEncoder(_model, _tokenizer);

    private MemoryRecord ToRecord(string id, string ns, string text, (ushort[] Keys, ushort[] Values, ushort[] Positions) m)
    {
        var decoded = new DecodedMemory(id, ns, text, m.Positions, m.Keys, m.Values);
        return _quantizer is null ? new Bf16Codec(_shape).Encode(decoded) : new QuantizedCodec(_quantizer, _shape).Encode(decoded);
    }

    /// <summary>
    /// Chunks, encodes, stores (durably) and indexes documents into <paramref name="ns"/>. References already in the
    /// bank (same normalised text) are skipped. Bad documents are reported and the rest go on.
    /// </summary>
    public IngestResult Ingest(IEnumerable<Document> documents, string ns, IProgress<IngestProgress>? progress = null, CancellationToken ct = default, bool saveIndex = true)
    {
        if (ReadOnly) throw new MemoryBankReadOnlyException(Directory);
        if (string.IsNullOrWhiteSpace(ns)) throw new ArgumentException("the namespace is empty");
        var sw = Stopwatch.StartNew();
        var chunker = new ReferenceChunker(_tokenizer, _model.Config.Memory!.ReferenceMaxTokens);
        var errors = new List<(string, string)>();
        int docs = 0, refs = 0, skipped = 0;
        var pending = new List<(string Id, string Text, int[] Tokens)>();
        var seen = new HashSet<string>();

        void Flush()
        {
            if (pending.Count == 0) return;
            var encoded = Encoder.Encode(pending.Select(p => p.Tokens).ToList());
            var records = pending.Select((p, i) => ToRecord(p.Id, ns, p.Text, encoded[i])).ToList();
            _tiers.PutManyAsync(records, ct).AsTask().GetAwaiter().GetResult();
            _retriever.Add(records.Select(r => (r.Id, r.Namespace, r.Text)).ToList(), null);
            refs += pending.Count;
            pending.Clear();
            progress?.Report(new IngestProgress(docs, refs, skipped, errors.Count, refs / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
        }

        foreach (var doc in documents)
        {
            ct.ThrowIfCancellationRequested();
            if (!doc.Ok) { errors.Add((doc.Source, doc.Error!)); continue; }
            docs++;
            foreach (var text in chunker.Split(doc.Text!))
            {
                var id = BankIdentity.MemoryId(text, ModelFingerprint);
                if (_disk.Contains(id) || !seen.Add(id)) { skipped++; continue; }
                var tokens = _tokenizer.Encode(text, addSpecialTokens: false);
                pending.Add((id, text, tokens));
                if (pending.Count >= _options.EncodeBatch) Flush();
            }
            progress?.Report(new IngestProgress(docs, refs, skipped, errors.Count, refs / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
        }
        Flush();
        if (saveIndex) _retriever.Save();
        return new IngestResult(docs, refs, skipped, errors, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Persists the retrieval index (ingestion in pieces saves once at the end, off the engine thread). A read-only bank saves nothing.</summary>
    public void SaveIndex()
    {
        if (!ReadOnly) _retriever.Save();
    }

    public IReadOnlyList<RetrievalHit> Search(string query, IReadOnlyCollection<string>? namespaces, int topK) =>
        _retriever.Search(query, new RetrievalOptions { TopK = topK, Namespaces = namespaces });

    public async ValueTask<RetrievedMemories> RetrieveAsync(MemoryQuery query, CancellationToken ct = default)
    {
        if (query.TopK <= 0 || string.IsNullOrWhiteSpace(query.Text)) return RetrievedMemories.None;
        var hits = Search(query.Text, query.Namespaces, query.TopK);
        if (hits.Count == 0) return RetrievedMemories.None;
        var fetched = await _tiers.FetchAsync(hits.Select(h => h.Id).ToList(), ct);
        var memories = new List<DecodedMemory>(hits.Count);
        var citations = new List<MemoryCitation>(hits.Count);
        for (int i = 0; i < hits.Count; i++)
        {
            if (fetched.Memories[i] is not { } m) continue;   // deleted or damaged since indexing: never served
            memories.Add(m);
            citations.Add(new MemoryCitation(hits[i].Id, hits[i].Namespace, hits[i].Text, hits[i].Score));
        }
        return new RetrievedMemories(memories, citations, fetched.ProcessHits, fetched.RedisHits, fetched.DiskHits);
    }

    public async ValueTask<bool> DeleteAsync(string id, CancellationToken ct = default)
    {
        if (ReadOnly) throw new MemoryBankReadOnlyException(Directory);
        var removed = await _tiers.DeleteAsync(id, ct);
        if (_retriever.Remove(id)) _retriever.Save();
        return removed;
    }

    public BankStats Stats()
    {
        int vectors = 2 * _shape.Layers * _shape.KvHeads * _shape.TokensPerHead;
        int payload = _quantizer is null ? vectors * _shape.HeadDim * 2 : vectors * _quantizer.BytesPerVector;
        return new BankStats(_disk.Count, _disk.BytesOnDisk, _disk.SegmentCount, Fingerprint, _quantizer is null ? "bf16" : "quantized", payload, _quantizer?.Description)
        {
            ReadOnly = ReadOnly,
            Writers = _disk.Writers,
            RefreshedAt = _refreshedAt,
            RefreshErrors = Interlocked.Read(ref _refreshErrors),
        };
    }

    public const string QuantizerReportFile = "quantizer-report.txt";

    /// <summary>
    /// Trains the bank's quantizer on <paramref name="samples"/> memories sampled uniformly from it (the paper's choice),
    /// reports the reconstruction error on held-out memories, and converts every record to quantized codes. Memory ids
    /// do not change (they derive from the model fingerprint), so the retrieval index is kept; records and Redis keys
    /// take the new bank fingerprint. Returns the report.
    /// </summary>
    public static QuantizationReport TrainQuantizer(string bankDir, CausalLM model, ITokenizer tokenizer, QuantizerOptions qOptions,
        int samples, int seed = 0, MemoryBankOptions? options = null, IProgress<string>? progress = null)
    {
        MemoryShape shape;
        List<DecodedMemory> sample;
        using (var bank = Open(bankDir, model, tokenizer, options))
        {
            if (bank.Quantizer is not null) throw new InvalidOperationException($"{bankDir}: the bank is already quantized ({bank.Quantizer.Description})");
            shape = bank.Shape;
            var rng = new Random(seed);
            var reservoir = new List<MemoryRecord>();
            int seen = 0;
            foreach (var r in bank.Disk.EnumerateAll())
            {
                seen++;
                if (reservoir.Count < samples) reservoir.Add(r);
                else if (rng.Next(seen) is var j && j < samples) reservoir[j] = r;
            }
            if (reservoir.Count < 2) throw new InvalidOperationException($"{bankDir}: {reservoir.Count} memories; ingest references before training a quantizer");
            sample = reservoir.Select(bank._decoder.Decode).ToList();
        }
        int held = Math.Max(1, sample.Count / 10);
        progress?.Report($"training on {sample.Count - held} memories, evaluating on {held}");
        var quantizer = QuantizerSet.Train(shape, sample.Skip(held), qOptions, seed, progress);
        var report = QuantizationReport.Evaluate(quantizer, sample.Take(held));

        // Convert: write every record quantized into a fresh store, then swap the segment folders.
        var mem = model.Config.Memory!;
        string modelFp = BankIdentity.Fingerprint(BankIdentity.WeightsDigest(model.Directory), mem, model.Config.HeadDim, null, BankIdentity.RopeKey(model.Config));
        string newFp = BankIdentity.Fingerprint(modelFp, mem, model.Config.HeadDim, quantizer.Fingerprint);
        string oldFp = modelFp;
        var work = Path.Combine(bankDir, QuantizingFolder);
        if (System.IO.Directory.Exists(work)) System.IO.Directory.Delete(work, true);
        var codec = new QuantizedCodec(quantizer, shape);
        var bf16 = new Bf16Codec(shape);
        int converted = 0;
        using (var oldStore = DiskShardStore.Open(bankDir, oldFp))
        using (var newStore = DiskShardStore.Open(work, newFp))
        {
            var batch = new List<MemoryRecord>(256);
            foreach (var r in oldStore.EnumerateAll())
            {
                batch.Add(codec.Encode(bf16.Decode(r)));
                if (batch.Count == 256) { newStore.PutManyAsync(batch).AsTask().GetAwaiter().GetResult(); converted += batch.Count; batch.Clear(); progress?.Report($"converted {converted}"); }
            }
            if (batch.Count > 0) newStore.PutManyAsync(batch).AsTask().GetAwaiter().GetResult();
        }
        // Swap in the quantized segments. The commit point is the quantizer file appearing in the bank folder; a crash
        // before it rolls back to the bf16 bank on the next open, a crash after it rolls forward.
        quantizer.Save(Path.Combine(work, QuantizerSet.FileName));
        var segments = Path.Combine(bankDir, "segments");
        var old = Path.Combine(bankDir, BackupSegments);
        if (System.IO.Directory.Exists(old)) System.IO.Directory.Delete(old, true);
        System.IO.Directory.Move(segments, old);
        System.IO.Directory.Move(Path.Combine(work, "segments"), segments);
        File.Move(Path.Combine(work, QuantizerSet.FileName), Path.Combine(bankDir, QuantizerSet.FileName));
        using (var w = new StringWriter()) { report.WriteTo(w); File.WriteAllText(Path.Combine(bankDir, QuantizerReportFile), w.ToString()); }
        RecoverInterruptedQuantization(bankDir);
        return report;
    }

    private const string BackupSegments = ".segments-bf16", QuantizingFolder = ".quantizing";

    /// <summary>Finishes or undoes a quantizer conversion that stopped half-way (see <see cref="TrainQuantizer"/>).</summary>
    internal static void RecoverInterruptedQuantization(string bankDir)
    {
        var old = Path.Combine(bankDir, BackupSegments);
        var work = Path.Combine(bankDir, QuantizingFolder);
        var segments = Path.Combine(bankDir, "segments");
        if (System.IO.Directory.Exists(old))
        {
            if (!File.Exists(Path.Combine(bankDir, QuantizerSet.FileName)))
            {
                // Not committed: the bf16 segments are the bank.
                if (System.IO.Directory.Exists(segments)) System.IO.Directory.Delete(segments, true);
                System.IO.Directory.Move(old, segments);
            }
            else System.IO.Directory.Delete(old, true);
        }
        if (System.IO.Directory.Exists(work)) System.IO.Directory.Delete(work, true);
    }

    private int _disposed;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _refreshStop.Cancel();
        try { _refreshLoop?.Wait(); } catch (AggregateException) { }
        _refreshGate.Wait();   // a refresh called from outside finishes first
        _refreshStop.Dispose();
        _encoder?.Dispose();
        _retriever.Dispose();
        if (_ownsEmbedder) _embedder.Dispose();
        _process?.Dispose();
        _disk.Dispose();
        _redisConnection?.Dispose();
    }

    private static class Log
    {
        public static readonly Action<ILogger, string, int, int, int, Exception?> IndexRebuilt = LoggerMessage.Define<string, int, int, int>(
            LogLevel.Information, new EventId(4201, "MemoryBankIndexRebuilt"),
            "Memory bank {BankDir}: retrieval index brought in line with the records ({Kept} kept or taken from other writers' indexes, {Embedded} embedded, {Removed} removed)");
        public static readonly Action<ILogger, string, long, int, int, int, Exception?> Refreshed = LoggerMessage.Define<string, long, int, int, int>(
            LogLevel.Information, new EventId(4202, "MemoryBankRefreshed"),
            "Memory bank {BankDir} refreshed: {Records} records read, {Indexed} references indexed ({Embedded} embedded), {Removed} removed");
        public static readonly Action<ILogger, string, Exception?> RefreshFailed = LoggerMessage.Define<string>(
            LogLevel.Error, new EventId(4203, "MemoryBankRefreshFailed"), "Memory bank {BankDir}: refresh failed; serving what was read so far and retrying");
    }
}

/// <summary>The bank's own instruments, on <see cref="Telemetry.EngineTelemetry.Meter"/>.</summary>
internal static class BankMetrics
{
    public static readonly System.Diagnostics.Metrics.Counter<long> RefreshErrors = Telemetry.EngineTelemetry.Meter.CreateCounter<long>(
        "memory3.memory.bank.refresh.errors", "{error}", "Background refreshes of a memory bank that failed (the bank keeps serving what it had).");
}
