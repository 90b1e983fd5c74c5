using System.Collections.Concurrent;
using System.Diagnostics;
using Memory3.Engine.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Memory3.Engine.Memory.Store;

/// <summary>
/// One <see cref="TieredMemoryStore.FetchAsync"/>: the memories in request order (null where no tier has one) and
/// how many came from each tier, for the response's usage block. ProcessHits + RedisHits + DiskHits + Misses = ids.Count.
/// </summary>
public sealed record FetchResult(DecodedMemory?[] Memories, int ProcessHits, int RedisHits, int DiskHits, int Misses);

/// <summary>Cumulative lookups per tier since the store was made. A tier that is absent stays at zero.</summary>
public readonly record struct TierStats(long ProcessHits, long ProcessMisses, long RedisHits, long RedisMisses, long DiskHits, long DiskMisses);

/// <summary>
/// The tiers chained: in-process (decoded) → Redis (record bytes) → disk (source of truth). A fetch asks each tier
/// once, for what the tiers above missed; records found in Redis or on disk are decoded once and kept in process; disk
/// hits are promoted into Redis in the background (errors counted, never surfaced). The in-process tier and Redis are
/// optional. Metrics: <c>memory3.memory.lookups{tier,hit}</c>, <c>memory3.memory.fetch.duration{tier}</c>; spans
/// <c>fetch</c> (tag tier, one per tier consulted) and <c>dequantize</c>.
/// </summary>
public sealed class TieredMemoryStore
{
    private readonly IMemoryStore _disk;
    private readonly IMemoryStore? _redis;
    private readonly InProcessMemoryCache? _process;
    private readonly IMemoryDecoder _decoder;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<Task, byte> _promotions = new();
    private long _processHits, _processMisses, _redisHits, _redisMisses, _diskHits, _diskMisses;

    public TieredMemoryStore(IMemoryStore disk, IMemoryDecoder decoder, IMemoryStore? redis = null, InProcessMemoryCache? process = null, ILogger? logger = null)
    {
        _disk = disk ?? throw new ArgumentNullException(nameof(disk));
        _decoder = decoder ?? throw new ArgumentNullException(nameof(decoder));
        _redis = redis;
        _process = process;
        _logger = logger ?? NullLogger.Instance;
    }

    public IMemoryStore Disk => _disk;
    public IMemoryStore? Redis => _redis;
    public InProcessMemoryCache? Process => _process;

    public TierStats GetStats() => new(
        Interlocked.Read(ref _processHits), Interlocked.Read(ref _processMisses),
        Interlocked.Read(ref _redisHits), Interlocked.Read(ref _redisMisses),
        Interlocked.Read(ref _diskHits), Interlocked.Read(ref _diskMisses));

    /// <summary>Fetches decoded memories for <paramref name="ids"/>, in order; null where no tier holds one.</summary>
    public async ValueTask<FetchResult> FetchAsync(IReadOnlyList<string> ids, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var result = new DecodedMemory?[ids.Count];
        int processHits = 0, redisHits = 0, diskHits = 0;

        // Tier 1: in process.
        List<int> missing;
        if (_process is not null)
        {
            long start = Stopwatch.GetTimestamp();
            using var span = StartFetch("process", ids.Count);
            missing = new List<int>();
            for (int i = 0; i < ids.Count; i++)
            {
                if (_process.TryGet(ids[i], out var m)) { result[i] = m; processHits++; }
                else missing.Add(i);
            }
            span?.SetTag("memory.hits", processHits);
            Account("process", processHits, missing.Count, ref _processHits, ref _processMisses, start);
        }
        else
        {
            missing = new List<int>(ids.Count);
            for (int i = 0; i < ids.Count; i++) missing.Add(i);
        }

        // Tier 2: Redis, one MGET for the misses.
        if (_redis is not null && missing.Count > 0)
        {
            long start = Stopwatch.GetTimestamp();
            MemoryRecord?[] found;
            using (var span = StartFetch("redis", missing.Count))
            {
                try
                {
                    found = await _redis.GetManyAsync(Select(ids, missing), ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    StoreMetrics.RedisError("other");
                    Log.RedisTierFailed(_logger, ex);
                    found = new MemoryRecord?[missing.Count];
                }
                redisHits = CountHits(found);
                span?.SetTag("memory.hits", redisHits);
            }
            Account("redis", redisHits, missing.Count - redisHits, ref _redisHits, ref _redisMisses, start);
            missing = Decode(found, missing, result, toPromote: null);
        }

        // Tier 3: disk, one batch for what is left.
        if (missing.Count > 0)
        {
            long start = Stopwatch.GetTimestamp();
            MemoryRecord?[] found;
            using (var span = StartFetch("disk", missing.Count))
            {
                found = await _disk.GetManyAsync(Select(ids, missing), ct).ConfigureAwait(false);
                diskHits = CountHits(found);
                span?.SetTag("memory.hits", diskHits);
            }
            Account("disk", diskHits, missing.Count - diskHits, ref _diskHits, ref _diskMisses, start);
            var promote = _redis is not null && diskHits > 0 ? new List<MemoryRecord>(diskHits) : null;
            missing = Decode(found, missing, result, promote);
            if (promote is not null) StartPromotion(promote);
        }

        return new FetchResult(result, processHits, redisHits, diskHits, missing.Count);
    }

    /// <summary>Writes the records durably to disk, then to Redis (best effort), and drops stale in-process copies.</summary>
    public async ValueTask PutManyAsync(IReadOnlyList<MemoryRecord> records, CancellationToken ct = default)
    {
        await _disk.PutManyAsync(records, ct).ConfigureAwait(false);
        if (_process is not null) foreach (var r in records) _process.Remove(r.Id);
        if (_redis is not null)
        {
            try { await _redis.PutManyAsync(records, ct).ConfigureAwait(false); }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                StoreMetrics.RedisError("other");
                Log.RedisTierFailed(_logger, ex);
            }
        }
    }

    /// <summary>Deletes from every tier (disk first: a tombstone). True when the disk held the memory.</summary>
    public async ValueTask<bool> DeleteAsync(string id, CancellationToken ct = default)
    {
        bool existed = await _disk.DeleteAsync(id, ct).ConfigureAwait(false);
        if (_redis is not null)
        {
            try { await _redis.DeleteAsync(id, ct).ConfigureAwait(false); }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                StoreMetrics.RedisError("other");
                Log.RedisTierFailed(_logger, ex);
            }
        }
        _process?.Remove(id);
        return existed;
    }

    /// <summary>Completes when the background promotions started so far have finished (tests, graceful shutdown).</summary>
    public Task WhenPromotionsCompleteAsync() => Task.WhenAll(_promotions.Keys);

    private List<int> Decode(MemoryRecord?[] found, List<int> missing, DecodedMemory?[] result, List<MemoryRecord>? toPromote)
    {
        var still = new List<int>();
        Activity? span = null;
        try
        {
            for (int k = 0; k < found.Length; k++)
            {
                var rec = found[k];
                if (rec is null) { still.Add(missing[k]); continue; }
                span ??= EngineTelemetry.ActivitySource.StartActivity("dequantize");
                var m = _decoder.Decode(rec);
                result[missing[k]] = m;
                _process?.Set(m);
                toPromote?.Add(rec);
            }
            span?.SetTag("memory.count", found.Length - still.Count);
        }
        finally { span?.Dispose(); }
        return still;
    }

    private void StartPromotion(List<MemoryRecord> records)
    {
        var task = PromoteAsync(records);
        if (task.IsCompleted) return;
        _promotions.TryAdd(task, 0);
        task.ContinueWith(t => _promotions.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task PromoteAsync(List<MemoryRecord> records)
    {
        try
        {
            await _redis!.PutManyAsync(records, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            StoreMetrics.RedisError("other");
            Log.RedisTierFailed(_logger, ex);
        }
    }

    private static Activity? StartFetch(string tier, int count)
    {
        var span = EngineTelemetry.ActivitySource.StartActivity("fetch");
        span?.SetTag("tier", tier);
        span?.SetTag("memory.count", count);
        return span;
    }

    private static void Account(string tier, int hits, int misses, ref long hitTotal, ref long missTotal, long start)
    {
        Interlocked.Add(ref hitTotal, hits);
        Interlocked.Add(ref missTotal, misses);
        StoreMetrics.RecordLookups(tier, hits, misses);
        StoreMetrics.RecordDuration(tier, start);
    }

    private static string[] Select(IReadOnlyList<string> ids, List<int> indices)
    {
        var s = new string[indices.Count];
        for (int i = 0; i < s.Length; i++) s[i] = ids[indices[i]];
        return s;
    }

    private static int CountHits(MemoryRecord?[] found)
    {
        int n = 0;
        foreach (var r in found) if (r is not null) n++;
        return n;
    }

    private static class Log
    {
        public static readonly Action<ILogger, Exception?> RedisTierFailed = LoggerMessage.Define(
            LogLevel.Warning, new EventId(4301, "RedisTierFailed"), "Redis tier failed; served from the tiers below");
    }
}
