using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Store;
using Memory3.Engine.Telemetry;
using StackExchange.Redis;
using static Memory3.Engine.Tests.Memory.Store.StoreTestData;

namespace Memory3.Engine.Tests.Memory.Store;

public class TieredMemoryStoreTests(RedisTargets targets) : IClassFixture<RedisTargets>
{
    private static readonly RedisMemoryStoreOptions Generous = new() { Timeout = TimeSpan.FromSeconds(3), WriteTimeout = TimeSpan.FromSeconds(3) };

    private sealed class Bank : IDisposable
    {
        public readonly TempDir Dir = new();
        public readonly string Fingerprint = NewFingerprint();
        public readonly DiskShardStore Disk;
        public readonly RedisMemoryStore? Redis;
        public readonly InProcessMemoryCache? Process;
        public readonly TieredMemoryStore Store;

        public Bank(IConnectionMultiplexer? mux, bool process, RedisMemoryStoreOptions? redisOptions = null)
        {
            Disk = DiskShardStore.Open(Dir.Path, Fingerprint);
            Redis = mux is null ? null : new RedisMemoryStore(mux, Fingerprint, redisOptions ?? Generous);
            Process = process ? new InProcessMemoryCache() : null;
            Store = new TieredMemoryStore(Disk, Bf16Decoder.Instance, Redis, Process);
        }

        public void Dispose()
        {
            Process?.Dispose();
            Disk.Dispose();
            Dir.Dispose();
        }
    }

    /// <summary>Collects this test's measurements (other tests run in parallel: assertions are lower bounds).</summary>
    private sealed class Metrics : IDisposable
    {
        private readonly MeterListener _listener = new();
        public readonly ConcurrentDictionary<string, long> Counts = new();
        public long Durations;
        public long ProcessBytes;

        public Metrics()
        {
            _listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == EngineTelemetry.Name && inst.Name.StartsWith("memory3.memory.")) l.EnableMeasurementEvents(inst); };
            _listener.SetMeasurementEventCallback<long>((inst, value, tags, _) =>
            {
                if (inst.Name == "memory3.memory.process.bytes") { Interlocked.Exchange(ref ProcessBytes, value); return; }
                string key = inst.Name;
                foreach (var t in tags) key += $"|{t.Key}={t.Value}";
                Counts.AddOrUpdate(key, value, (_, v) => v + value);
            });
            _listener.SetMeasurementEventCallback<double>((inst, _, _, _) => { if (inst.Name == "memory3.memory.fetch.duration") Interlocked.Increment(ref Durations); });
            _listener.Start();
        }

        public long Lookups(string tier, bool hit) => Counts.GetValueOrDefault($"memory3.memory.lookups|tier={tier}|hit={(hit ? "True" : "False")}");
        public long RedisErrors => Counts.Where(kv => kv.Key.StartsWith("memory3.memory.redis.errors")).Sum(kv => kv.Value);
        public void Observe() => _listener.RecordObservableInstruments();
        public void Dispose() => _listener.Dispose();
    }

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task FirstFetchHitsDiskAndPromotesThenProcessServes(string target)
    {
        using var metrics = new Metrics();
        using var bank = new Bank(targets.Mux(target), process: true);
        var records = Records(5, seed: 30);
        await bank.Disk.PutManyAsync(records);   // on disk only
        var ids = records.Select(r => r.Id).Append("0123456789abcdef0123456789abcdef").ToList();

        var first = await bank.Store.FetchAsync(ids);
        Assert.Equal((0, 0, 5, 1), (first.ProcessHits, first.RedisHits, first.DiskHits, first.Misses));
        for (int i = 0; i < 5; i++) AssertSame(records[i], first.Memories[i]);
        Assert.Null(first.Memories[5]);
        await bank.Store.WhenPromotionsCompleteAsync();
        var inRedis = await bank.Redis!.GetManyAsync(records.Select(r => r.Id).ToList());
        for (int i = 0; i < 5; i++) AssertSame(records[i], inRedis[i]);

        var second = await bank.Store.FetchAsync(ids);
        Assert.Equal((5, 0, 0, 1), (second.ProcessHits, second.RedisHits, second.DiskHits, second.Misses));
        for (int i = 0; i < 5; i++) AssertSame(records[i], second.Memories[i]);
        Assert.Same(first.Memories[0], second.Memories[0]);   // the decoded object is kept, not rebuilt

        Assert.Equal(new TierStats(5, 7, 0, 7, 5, 2), bank.Store.GetStats());
        Assert.True(metrics.Lookups("disk", true) >= 5);
        Assert.True(metrics.Lookups("process", true) >= 5);
        Assert.True(metrics.Lookups("redis", false) >= 6);
        Assert.True(metrics.Durations >= 5);
        metrics.Observe();
        Assert.True(Interlocked.Read(ref metrics.ProcessBytes) >= bank.Process!.Bytes);
        Assert.True(bank.Process.Bytes >= 5 * first.Memories[0]!.ByteSize);
    }

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task WithTheProcessTierOffTheSecondFetchHitsRedis(string target)
    {
        using var metrics = new Metrics();
        using var bank = new Bank(targets.Mux(target), process: false);
        var records = Records(4, seed: 31);
        await bank.Disk.PutManyAsync(records);
        var ids = records.Select(r => r.Id).ToList();
        var first = await bank.Store.FetchAsync(ids);
        Assert.Equal(4, first.DiskHits);
        await bank.Store.WhenPromotionsCompleteAsync();
        var second = await bank.Store.FetchAsync(ids);
        Assert.Equal((0, 4, 0, 0), (second.ProcessHits, second.RedisHits, second.DiskHits, second.Misses));
        for (int i = 0; i < 4; i++) AssertSame(records[i], second.Memories[i]);
        Assert.True(metrics.Lookups("redis", true) >= 4);
        Assert.Equal(0, bank.Store.GetStats().ProcessHits + bank.Store.GetStats().ProcessMisses);
    }

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task PutThenDeleteGoThroughEveryTier(string target)
    {
        using var bank = new Bank(targets.Mux(target), process: true);
        var records = Records(3, seed: 32);
        await bank.Store.PutManyAsync(records);
        Assert.True(bank.Disk.Contains(records[0].Id));
        AssertSame(records[0], (await bank.Redis!.GetManyAsync([records[0].Id]))[0]);   // written through
        var fetched = await bank.Store.FetchAsync([records[0].Id]);
        Assert.Equal(1, fetched.RedisHits);
        Assert.True(bank.Process!.TryGet(records[0].Id, out _));

        Assert.True(await bank.Store.DeleteAsync(records[0].Id));
        Assert.False(bank.Disk.Contains(records[0].Id));
        Assert.Null((await bank.Redis.GetManyAsync([records[0].Id]))[0]);
        Assert.False(bank.Process.TryGet(records[0].Id, out _));
        var after = await bank.Store.FetchAsync([records[0].Id]);
        Assert.Equal(1, after.Misses);
        Assert.False(await bank.Store.DeleteAsync(records[0].Id));
    }

    [Fact]
    public async Task GarnetGoingDownMidwayFallsThroughToDiskAndOpensTheBreaker()
    {
        int port = RedisTargets.FreePort();
        var garnet = RedisTargets.StartGarnet(port);
        using var mux = RedisTargets.Connect($"127.0.0.1:{port}");
        using var metrics = new Metrics();
        using var bank = new Bank(mux, process: false, new RedisMemoryStoreOptions
        {
            Timeout = TimeSpan.FromMilliseconds(200), WriteTimeout = TimeSpan.FromMilliseconds(200),
            BreakerFailureThreshold = 2, BreakerCooldown = TimeSpan.FromMinutes(1),
        });
        var records = Records(5, seed: 33);
        await bank.Store.PutManyAsync(records);
        var ids = records.Select(r => r.Id).ToList();
        Assert.Equal(5, (await bank.Store.FetchAsync(ids)).RedisHits);
        Assert.True(bank.Redis!.Healthy);

        garnet.Dispose();   // Redis goes away mid-way

        for (int round = 0; round < 4; round++)
        {
            var res = await bank.Store.FetchAsync(ids);
            Assert.Equal(5, res.DiskHits);
            for (int i = 0; i < 5; i++) AssertSame(records[i], res.Memories[i]);
        }
        await bank.Store.WhenPromotionsCompleteAsync();
        Assert.False(bank.Redis.Healthy);
        Assert.True(bank.Redis.Errors >= 2);
        Assert.True(metrics.RedisErrors >= 2);
        await bank.Store.PutManyAsync([Records(1, seed: 34)[0]]);   // writes still succeed (disk)
        Assert.True(await bank.Store.DeleteAsync(records[0].Id));
    }

    [Fact]
    public async Task BreakerClosesAgainWhenRedisComesBack()
    {
        int port = RedisTargets.FreePort();
        var garnet = RedisTargets.StartGarnet(port);
        using var mux = RedisTargets.Connect($"127.0.0.1:{port}", failFast: true);   // no backlog: nothing queued during the outage reaches the new server
        using var bank = new Bank(mux, process: false, new RedisMemoryStoreOptions
        {
            Timeout = TimeSpan.FromMilliseconds(200), BreakerFailureThreshold = 2, BreakerCooldown = TimeSpan.FromMilliseconds(200),
        });
        var records = Records(2, seed: 38);
        await bank.Store.PutManyAsync(records);
        var ids = records.Select(r => r.Id).ToList();
        garnet.Dispose();
        for (int round = 0; round < 2; round++) Assert.Equal(2, (await bank.Store.FetchAsync(ids)).DiskHits);
        Assert.False(bank.Redis!.Healthy);

        garnet = RedisTargets.StartGarnet(port);   // back, empty (flushed)
        try
        {
            var sw = Stopwatch.StartNew();
            while (!mux.IsConnected && sw.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(50);
            await Task.Delay(250);   // past the cool-down: the next call is the probe
            var res = await bank.Store.FetchAsync(ids);
            Assert.True(res.DiskHits == 2, $"{res} errors={bank.Redis.Errors} connected={mux.IsConnected} waited={sw.ElapsedMilliseconds}");
            Assert.True(bank.Redis.Healthy);
            await bank.Store.WhenPromotionsCompleteAsync();
            Assert.Equal(2, (await bank.Store.FetchAsync(ids)).RedisHits);   // promoted again
        }
        finally { garnet.Dispose(); }
    }

    [ExternalRedisFact]
    public async Task StalledExternalRedisTimesOutToDiskAndTheBreakerRecovers()
    {
        var mux = targets.Mux(RedisTargets.External);
        using var bank = new Bank(mux, process: false, new RedisMemoryStoreOptions
        {
            Timeout = TimeSpan.FromMilliseconds(50), WriteTimeout = TimeSpan.FromSeconds(3),
            BreakerFailureThreshold = 2, BreakerCooldown = TimeSpan.FromMilliseconds(300),
        });
        var records = Records(3, seed: 35);
        await bank.Store.PutManyAsync(records);
        var ids = records.Select(r => r.Id).ToList();
        await mux.GetServer(mux.GetEndPoints()[0]).ExecuteAsync("CLIENT", "PAUSE", "500", "ALL");   // every client stalls
        for (int round = 0; round < 3; round++) Assert.Equal(3, (await bank.Store.FetchAsync(ids)).DiskHits);
        Assert.False(bank.Redis!.Healthy);
        await Task.Delay(1000);   // pause over, cool-down over: one probe closes the breaker
        var again = await bank.Store.FetchAsync(ids);
        Assert.Equal(3, again.RedisHits + again.DiskHits);
        Assert.True(bank.Redis.Healthy);
    }

    [Fact]
    public async Task SpansNameEachTierAndTheDequantizeStep()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == EngineTelemetry.Name || s.Name == "test",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("test");
        using var bank = new Bank(targets.Mux(RedisTargets.Garnet), process: true);
        var records = Records(2, seed: 36);
        await bank.Disk.PutManyAsync(records);
        ActivityTraceId trace;
        using (var root = source.StartActivity("retrieve")!)
        {
            trace = root.TraceId;
            await bank.Store.FetchAsync(records.Select(r => r.Id).ToList());
        }
        var mine = spans.Where(s => s.TraceId == trace).ToList();
        Assert.Equal(["disk", "process", "redis"], mine.Where(s => s.OperationName == "fetch").Select(s => (string)s.GetTagItem("tier")!).Order());
        Assert.Single(mine, s => s.OperationName == "dequantize");
    }

    [Fact]
    public async Task WorksWithoutRedisAndTheProcessTierIsBoundedInBytes()
    {
        using var tmp = new TempDir();
        using var disk = DiskShardStore.Open(tmp.Path, NewFingerprint());
        var records = Records(10, seed: 37);
        await disk.PutManyAsync(records);
        long one = Bf16Decoder.Instance.Decode(records[0]).ByteSize;
        using var cache = new InProcessMemoryCache(new InProcessMemoryCacheOptions { SizeLimitBytes = 3 * one + one / 2 });
        var store = new TieredMemoryStore(disk, Bf16Decoder.Instance, redis: null, process: cache);
        var res = await store.FetchAsync(records.Select(r => r.Id).ToList());
        Assert.Equal(10, res.DiskHits);
        for (int i = 0; i < 10; i++) AssertSame(records[i], res.Memories[i]);
        Assert.InRange(cache.Count, 1, 3);
        Assert.InRange(cache.Bytes, one, 3 * one + one / 2);
        Assert.True(cache.TryGet(records[0].Id, out var m));   // the first ones fit, later ones were refused
        AssertSame(records[0], m);
    }
}
