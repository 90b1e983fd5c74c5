using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using StackExchange.Redis.KeyspaceIsolation;

namespace Memory3.Engine.Memory.Store;

public sealed class RedisMemoryStoreOptions
{
    /// <summary>Time to live of a memory in Redis, refreshed whenever it is written (put or promotion).</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>A read (MGET) slower than this counts as a failure and the lookup falls through as a miss.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Limit for writes and deletes (they carry whole records).</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Consecutive failures that open the circuit breaker.</summary>
    public int BreakerFailureThreshold { get; init; } = 3;

    /// <summary>How long an open breaker skips Redis before letting one probe through.</summary>
    public TimeSpan BreakerCooldown { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Redis database number; -1 is the multiplexer's default.</summary>
    public int Database { get; init; } = -1;
}

/// <summary>
/// The hot tier: record bytes (the same bytes as a disk record) under <c>m3:{fingerprint}:{memory id}</c>, one MGET per
/// batch, SET with a TTL. Redis down, slow or flushed never fails a caller: reads return all-null (a miss), writes and
/// deletes are dropped, and the failure is counted (<c>memory3.memory.redis.errors</c>). After
/// <see cref="RedisMemoryStoreOptions.BreakerFailureThreshold"/> consecutive failures the breaker opens and Redis is
/// skipped for <see cref="RedisMemoryStoreOptions.BreakerCooldown"/>, then one probe decides whether it closes.
/// Values are checked (CRC, fingerprint, id) before they are served. Cancelling <c>ct</c> still throws.
/// </summary>
public sealed class RedisMemoryStore : IMemoryStore
{
    private readonly IDatabase _db;
    private readonly string _fingerprint;
    private readonly byte[] _fingerprintUtf8;
    private readonly RedisMemoryStoreOptions _options;
    private readonly ILogger _logger;
    private readonly long _cooldownTicks;
    private int _consecutiveFailures;
    private long _openUntil;        // Stopwatch timestamp; 0 = closed
    private int _probing;
    private long _errors;

    public RedisMemoryStore(IConnectionMultiplexer connection, string fingerprint, RedisMemoryStoreOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        _options = options ?? new RedisMemoryStoreOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.BreakerFailureThreshold);
        _fingerprint = fingerprint;
        _fingerprintUtf8 = Encoding.UTF8.GetBytes(fingerprint);
        _logger = logger ?? NullLogger.Instance;
        _cooldownTicks = (long)(_options.BreakerCooldown.TotalSeconds * Stopwatch.Frequency);
        // Key prefix "m3:{fingerprint}:" built once from bytes; SE.Redis prepends it to every key.
        byte[] prefix = [.. "m3:"u8, .. _fingerprintUtf8, .. ":"u8];
        _db = connection.GetDatabase(_options.Database).WithKeyPrefix(prefix);
    }

    public string Tier => "redis";

    /// <summary>False while the circuit breaker is open (or half-open, awaiting a successful probe).</summary>
    public bool Healthy => Volatile.Read(ref _openUntil) == 0;

    /// <summary>Failed, timed-out, skipped or corrupt operations since start (also the metric).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>The full Redis key of a memory.</summary>
    public string KeyFor(string id) => "m3:" + _fingerprint + ":" + id;

    public async ValueTask<MemoryRecord?[]> GetManyAsync(IReadOnlyList<string> ids, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        var result = new MemoryRecord?[ids.Count];
        if (ids.Count == 0) return result;
        if (!AllowRequest()) { CountError("breaker_open"); return result; }
        var keys = new RedisKey[ids.Count];
        for (int i = 0; i < keys.Length; i++) keys[i] = ids[i];
        var (ok, values) = await CallAsync(() => _db.StringGetAsync(keys), _options.Timeout, ct).ConfigureAwait(false);
        if (!ok) return result;
        for (int i = 0; i < values.Length && i < result.Length; i++)
        {
            if (values[i].IsNull) continue;
            var bytes = (ReadOnlyMemory<byte>)values[i];
            result[i] = MemoryRecordCodec.TryDecodePut(bytes.Span, _fingerprintUtf8, ids[i], out string? why);
            if (result[i] is null)
            {
                CountError("corrupt");
                Log.CorruptValue(_logger, KeyFor(ids[i]), why!, null);
            }
        }
        return result;
    }

    public async ValueTask PutManyAsync(IReadOnlyList<MemoryRecord> records, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        if (records.Count == 0) return;
        if (!AllowRequest()) { CountError("breaker_open"); return; }
        await CallAsync(async () =>
        {
            // Exact-size arrays, not pooled ones: a timed-out SET may still be writing its value after we return.
            var batch = _db.CreateBatch();
            var tasks = new Task[records.Count];
            for (int i = 0; i < records.Count; i++)
                tasks[i] = batch.StringSetAsync(records[i].Id, MemoryRecordCodec.SerializePut(_fingerprintUtf8, records[i]), _options.Ttl, When.Always);
            batch.Execute();
            await Task.WhenAll(tasks).ConfigureAwait(false);
            return true;
        }, _options.WriteTimeout, ct).ConfigureAwait(false);
    }

    /// <summary>Deletes the key; false when it was absent or Redis is unavailable.</summary>
    public async ValueTask<bool> DeleteAsync(string id, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        if (!AllowRequest()) { CountError("breaker_open"); return false; }
        var (ok, deleted) = await CallAsync(() => _db.KeyDeleteAsync(id), _options.WriteTimeout, ct).ConfigureAwait(false);
        return ok && deleted;
    }

    // ---------------------------------------------------------------- circuit breaker

    private bool AllowRequest()
    {
        long until = Volatile.Read(ref _openUntil);
        if (until == 0) return true;
        if (Stopwatch.GetTimestamp() < until) return false;
        return Interlocked.CompareExchange(ref _probing, 1, 0) == 0;   // half-open: one probe at a time
    }

    private void OnSuccess()
    {
        Volatile.Write(ref _consecutiveFailures, 0);
        if (Interlocked.Exchange(ref _openUntil, 0) != 0) Log.BreakerClosed(_logger, _fingerprint, null);
        Volatile.Write(ref _probing, 0);
    }

    private void OnFailure(Exception ex)
    {
        string reason = ex switch
        {
            TimeoutException or RedisTimeoutException => "timeout",
            RedisConnectionException or ObjectDisposedException => "connection",
            _ => "other",
        };
        CountError(reason);
        int failures = Interlocked.Increment(ref _consecutiveFailures);
        if (failures >= _options.BreakerFailureThreshold)
        {
            bool wasClosed = Interlocked.Exchange(ref _openUntil, Math.Max(1, Stopwatch.GetTimestamp() + _cooldownTicks)) == 0;
            Volatile.Write(ref _probing, 0);
            if (wasClosed) Log.BreakerOpened(_logger, _fingerprint, failures, _options.BreakerCooldown.TotalSeconds, ex);
        }
    }

    private void CountError(string reason)
    {
        Interlocked.Increment(ref _errors);
        StoreMetrics.RedisError(reason);
    }

    /// <summary>Observes a task we stopped waiting for, so its eventual fault is not unobserved.</summary>
    /// <summary>
    /// One Redis call under the timeout and the breaker: a failure or timeout is counted and reported as (false, default),
    /// never thrown; the caller's cancellation is. A call we stopped waiting for has its fault observed.
    /// </summary>
    private async ValueTask<(bool Ok, T Value)> CallAsync<T>(Func<Task<T>> start, TimeSpan timeout, CancellationToken ct)
    {
        Task<T>? task = null;
        T value;
        try
        {
            task = start();
            value = await task.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            Observe(task);
            throw;
        }
        catch (Exception ex)
        {
            Observe(task);
            OnFailure(ex);
            return (false, default!);
        }
        OnSuccess();
        return (true, value);
    }

    private static void Observe(Task? task) =>
        task?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private static class Log
    {
        public static readonly Action<ILogger, string, int, double, Exception?> BreakerOpened = LoggerMessage.Define<string, int, double>(
            LogLevel.Warning, new EventId(4201, "RedisBreakerOpened"),
            "Redis tier for bank {Fingerprint}: {Failures} consecutive failures, skipping Redis for {CooldownSeconds} s (reads fall through to disk)");
        public static readonly Action<ILogger, string, Exception?> BreakerClosed = LoggerMessage.Define<string>(
            LogLevel.Information, new EventId(4202, "RedisBreakerClosed"), "Redis tier for bank {Fingerprint} is healthy again");
        public static readonly Action<ILogger, string, string, Exception?> CorruptValue = LoggerMessage.Define<string, string>(
            LogLevel.Warning, new EventId(4203, "RedisCorruptValue"), "Redis value {Key} failed verification and was not served ({Reason})");
    }
}
