using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Store;
using StackExchange.Redis;
using static Memory3.Engine.Tests.Memory.Store.StoreTestData;

namespace Memory3.Engine.Tests.Memory.Store;

public class RedisMemoryStoreTests(RedisTargets targets) : IClassFixture<RedisTargets>
{
    private static readonly RedisMemoryStoreOptions Generous = new() { Timeout = TimeSpan.FromSeconds(3), WriteTimeout = TimeSpan.FromSeconds(3), Ttl = TimeSpan.FromMinutes(10) };

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task RoundTripsByteExactWithOneBatchedGetAndNullsForMissing(string target)
    {
        var store = new RedisMemoryStore(targets.Mux(target), NewFingerprint(), Generous);
        Assert.Equal("redis", store.Tier);
        var records = Records(6, seed: 20);
        await store.PutManyAsync(records);
        var ids = records.Select(r => r.Id).ToList();
        ids.Insert(2, "0123456789abcdef0123456789abcdef");
        var got = await store.GetManyAsync(ids);
        Assert.Equal(7, got.Length);
        Assert.Null(got[2]);
        for (int i = 0, k = 0; i < ids.Count; i++)
            if (i != 2) AssertSame(records[k++], got[i]);
        Assert.Empty(await store.GetManyAsync([]));
        Assert.True(store.Healthy);
        Assert.Equal(0, store.Errors);
    }

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task KeysCarryTheFingerprintAndATtl(string target)
    {
        string fp = NewFingerprint();
        var store = new RedisMemoryStore(targets.Mux(target), fp, Generous);
        var r = Records(1, seed: 21)[0];
        await store.PutManyAsync([r]);
        var db = targets.Mux(target).GetDatabase();
        string key = $"m3:{fp}:{r.Id}";
        Assert.Equal(key, store.KeyFor(r.Id));
        var ttl = await db.KeyTimeToLiveAsync(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl!.Value, TimeSpan.FromMinutes(9), TimeSpan.FromMinutes(10));
        byte[] raw = (byte[])(await db.StringGetAsync(key))!;
        Assert.Equal(MemoryRecordCodec.SerializePut(System.Text.Encoding.UTF8.GetBytes(fp), r), raw);   // the disk record bytes
        // Another bank's store does not see it.
        Assert.Null((await new RedisMemoryStore(targets.Mux(target), NewFingerprint(), Generous).GetManyAsync([r.Id]))[0]);
    }

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task FlushedOrDamagedValuesAreMissesNeverErrorsToTheCaller(string target)
    {
        string fp = NewFingerprint();
        var store = new RedisMemoryStore(targets.Mux(target), fp, Generous);
        var records = Records(3, seed: 22);
        await store.PutManyAsync(records);
        var db = targets.Mux(target).GetDatabase();
        await db.KeyDeleteAsync(store.KeyFor(records[0].Id));                             // flushed
        await db.StringSetAsync(store.KeyFor(records[1].Id), new byte[] { 1, 2, 3, 4 });   // garbage
        var bytes = MemoryRecordCodec.SerializePut(System.Text.Encoding.UTF8.GetBytes(fp), records[2]);
        bytes[^20] ^= 1;
        await db.StringSetAsync(store.KeyFor(records[2].Id), bytes);                      // bit rot
        var got = await store.GetManyAsync(records.Select(r => r.Id).ToList());
        Assert.All(got, Assert.Null);
        Assert.Equal(2, store.Errors);
        Assert.True(store.Healthy);
    }

    [Theory]
    [MemberData(nameof(RedisTargets.All), MemberType = typeof(RedisTargets))]
    public async Task DeleteRemovesTheKey(string target)
    {
        var store = new RedisMemoryStore(targets.Mux(target), NewFingerprint(), Generous);
        var r = Records(1, seed: 23)[0];
        await store.PutManyAsync([r]);
        Assert.True(await store.DeleteAsync(r.Id));
        Assert.False(await store.DeleteAsync(r.Id));
        Assert.Null((await store.GetManyAsync([r.Id]))[0]);
    }

    [Fact]
    public async Task UnreachableRedisOpensTheBreakerAndNeverThrows()
    {
        using var mux = RedisTargets.Connect($"127.0.0.1:{RedisTargets.FreePort()}", failFast: true);   // nothing listens there
        var store = new RedisMemoryStore(mux, NewFingerprint(), new RedisMemoryStoreOptions { BreakerFailureThreshold = 2, BreakerCooldown = TimeSpan.FromMinutes(1) });
        var r = Records(1, seed: 24)[0];
        await store.PutManyAsync([r]);
        Assert.True(store.Healthy);
        Assert.Null((await store.GetManyAsync([r.Id]))[0]);
        Assert.False(store.Healthy);
        Assert.Null((await store.GetManyAsync([r.Id]))[0]);   // skipped: the breaker is open (counted as breaker_open)
        Assert.False(await store.DeleteAsync(r.Id));
        Assert.Equal(4, store.Errors);
    }
}
