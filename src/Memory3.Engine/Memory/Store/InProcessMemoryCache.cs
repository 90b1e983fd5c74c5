using Microsoft.Extensions.Caching.Memory;

namespace Memory3.Engine.Memory.Store;

public sealed class InProcessMemoryCacheOptions
{
    /// <summary>Bound of the cache in bytes (sum of <see cref="DecodedMemory.ByteSize"/>).</summary>
    public long SizeLimitBytes { get; init; } = 1L << 30;

    /// <summary>An entry not read for this long is dropped; null keeps entries until evicted for room.</summary>
    public TimeSpan? SlidingExpiration { get; init; }

    /// <summary>Share of the cache freed when it is full (MemoryCache's compaction).</summary>
    public double CompactionPercentage { get; init; } = 0.10;
}

/// <summary>
/// The in-process tier: decoded memories (plain bf16 arrays, never tensors) in a <see cref="MemoryCache"/> bounded in
/// bytes. One cache serves one bank (keys are memory ids). An entry larger than the whole bound is not kept.
/// </summary>
public sealed class InProcessMemoryCache : IDisposable
{
    private readonly MemoryCache _cache;
    private readonly TimeSpan? _sliding;
    private bool _disposed;

    public InProcessMemoryCache(InProcessMemoryCacheOptions? options = null)
    {
        options ??= new InProcessMemoryCacheOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.SizeLimitBytes);
        _sliding = options.SlidingExpiration;
        _cache = new MemoryCache(new MemoryCacheOptions
        {
            SizeLimit = options.SizeLimitBytes,
            CompactionPercentage = options.CompactionPercentage,
            TrackStatistics = true,
        });
        StoreMetrics.Register(this);
    }

    /// <summary>Estimated bytes held now.</summary>
    public long Bytes => _disposed ? 0 : _cache.GetCurrentStatistics()?.CurrentEstimatedSize ?? 0;

    public int Count => _cache.Count;

    public bool TryGet(string id, out DecodedMemory memory)
    {
        if (_cache.TryGetValue(id, out object? value) && value is DecodedMemory m)
        {
            memory = m;
            return true;
        }
        memory = null!;
        return false;
    }

    public void Set(DecodedMemory memory)
    {
        var entry = new MemoryCacheEntryOptions { Size = memory.ByteSize };
        if (_sliding is { } s) entry.SlidingExpiration = s;
        _cache.Set(memory.Id, memory, entry);
    }

    public void Remove(string id) => _cache.Remove(id);

    public void Clear() => _cache.Clear();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        StoreMetrics.Unregister(this);
        _cache.Dispose();
    }
}
