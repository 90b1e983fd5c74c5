using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Memory3.Engine.Telemetry;

namespace Memory3.Engine.Memory.Store;

/// <summary>The memory tiers' instruments, all on <see cref="EngineTelemetry.Meter"/>.</summary>
internal static class StoreMetrics
{
    /// <summary>Memories looked up per tier: tags <c>tier</c> (process, redis, disk) and <c>hit</c> (true, false).</summary>
    public static readonly Counter<long> Lookups = EngineTelemetry.Meter.CreateCounter<long>(
        "memory3.memory.lookups", "{memory}", "Memories looked up in a tier, by tier and hit.");

    /// <summary>Time one batched lookup spent in a tier (ms), tag <c>tier</c>.</summary>
    public static readonly Histogram<double> FetchDuration = EngineTelemetry.Meter.CreateHistogram<double>(
        "memory3.memory.fetch.duration", "ms", "Time of one batched lookup in a tier.");

    /// <summary>Redis operations that failed, timed out, were skipped by the open breaker or returned bad bytes; tag <c>reason</c>.</summary>
    public static readonly Counter<long> RedisErrors = EngineTelemetry.Meter.CreateCounter<long>(
        "memory3.memory.redis.errors", "{error}", "Redis tier errors (timeouts, connection failures, corrupt values).");

    /// <summary>Disk records that failed their CRC or structure check when read after open (never served).</summary>
    public static readonly Counter<long> DiskCorruptReads = EngineTelemetry.Meter.CreateCounter<long>(
        "memory3.memory.disk.corrupt_reads", "{record}", "Disk records that failed verification on read and were not served.");

    /// <summary>Records of other writers picked up by <see cref="DiskShardStore.Refresh"/> (a read-only bank following its writers).</summary>
    public static readonly Counter<long> DiskRefreshRecords = EngineTelemetry.Meter.CreateCounter<long>(
        "memory3.memory.disk.refresh.records", "{record}", "Records written by other writers and picked up by a bank refresh.");

    private static readonly object BoxedTrue = true, BoxedFalse = false;
    private static readonly ConcurrentDictionary<InProcessMemoryCache, byte> Caches = new();

    /// <summary>Bytes held by every live in-process cache.</summary>
    public static readonly ObservableGauge<long> ProcessBytes = EngineTelemetry.Meter.CreateObservableGauge(
        "memory3.memory.process.bytes", ObserveProcessBytes, "By", "Estimated bytes of decoded memories held in process.");

    public static void Register(InProcessMemoryCache cache) => Caches.TryAdd(cache, 0);
    public static void Unregister(InProcessMemoryCache cache) => Caches.TryRemove(cache, out _);

    private static long ObserveProcessBytes()
    {
        long sum = 0;
        foreach (var c in Caches.Keys) sum += c.Bytes;
        return sum;
    }

    public static void RecordLookups(string tier, int hits, int misses)
    {
        if (hits > 0) Lookups.Add(hits, new KeyValuePair<string, object?>("tier", tier), new KeyValuePair<string, object?>("hit", BoxedTrue));
        if (misses > 0) Lookups.Add(misses, new KeyValuePair<string, object?>("tier", tier), new KeyValuePair<string, object?>("hit", BoxedFalse));
    }

    public static void RecordDuration(string tier, long startTimestamp) =>
        FetchDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds, new KeyValuePair<string, object?>("tier", tier));

    public static void RedisError(string reason, long count = 1) =>
        RedisErrors.Add(count, new KeyValuePair<string, object?>("reason", reason));
}
