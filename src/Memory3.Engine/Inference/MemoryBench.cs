using System.Diagnostics;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Quantize;
using Memory3.Engine.Memory.Store;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Inference;

public sealed record MemoryDecodeBenchResult(int Batch, int PromptTokens, int OutputTokens, int RetrievalsPerSequence,
    double TokensPerSecondWithout, double TokensPerSecondWith, double Ratio, bool ProcessTier, double RetrievalMsTotal);

public sealed record TierLatency(string Tier, int Samples, double P50Ms, double P99Ms);

/// <summary>
/// The paper's throughput protocol (§7.5): B sequences, 128 tokens in, 128 out, memory refreshed every 64 tokens
/// (3 retrievals per sequence), against the same model decoding the same lengths without memory, in the same run.
/// Retrieval runs inline here (the worst case: the engine overlaps it with other sequences' steps).
/// </summary>
public static class MemoryBench
{
    public static MemoryDecodeBenchResult DecodeRatio(CausalLM model, ITokenizer tokenizer, MemoryBank bank, int batch,
        int promptTokens = 128, int outputTokens = 128, bool processTier = true, int repeats = 3)
    {
        var mem = model.Config.Memory ?? throw new InvalidOperationException("the model has no memory configuration");
        var rng = new Random(7);
        int vocab = Math.Min(model.Config.VocabSize, tokenizer.VocabSize);
        var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, promptTokens).Select(_ => rng.Next(3, vocab)).ToArray()).ToArray();

        // Interleaved repeats, medians: this machine is shared and noisy.
        var withouts = new List<double>();
        var withs = new List<double>();
        int retrievals = 0;
        double retrievalMs = 0;
        for (int i = 0; i < repeats; i++)
        {
            withouts.Add(Run(model, tokenizer, null, prompts, outputTokens, out _, out _));
            withs.Add(Run(model, tokenizer, bank, prompts, outputTokens, out retrievals, out retrievalMs));
        }
        double without = withouts.Order().ElementAt(repeats / 2), with = withs.Order().ElementAt(repeats / 2);
        return new MemoryDecodeBenchResult(batch, promptTokens, outputTokens, retrievals / batch, without, with, with / without, processTier, retrievalMs);
    }

    /// <summary>Prefills (not timed), then times the decode phase; returns generated tokens per second.</summary>
    private static double Run(CausalLM model, ITokenizer tokenizer, MemoryBank? bank, int[][] prompts, int outputTokens, out int retrievals, out double retrievalMs)
    {
        int B = prompts.Length;
        var layout = SequenceLayout.For(model, tokenizer, bank is null ? null : new MemoryReadOptions(bank));
        using var pool = model.CreatePool(B, layout.ContextCacheStart + prompts[0].Length + outputTokens + 1);
        var valid = new int[B];
        int r = 0;
        double rMs = 0;
        int Attach(int slot, ReadOnlySpan<int> text)
        {
            var sw = Stopwatch.StartNew();
            var got = bank!.RetrieveAsync(new MemoryQuery(tokenizer.Decode(text, true), null, layout.MemoriesPerChunk)).AsTask().GetAwaiter().GetResult();
            int valid = layout.Write(model, pool, slot, got);
            rMs += sw.Elapsed.TotalMilliseconds;
            r++;
            return valid;
        }
        var next = new int[B];
        for (int s = 0; s < B; s++)
        {
            float[] logits = [];
            if (layout.HasMemory)
            {
                model.Forward(layout.PrefixBatch(s), pool);
                foreach (var (start, n) in MemorySchedule.PromptChunks(prompts[s].Length, layout.Interval))
                {
                    valid[s] = Attach(s, prompts[s].AsSpan(start, n));
                    logits = model.Forward(layout.Batch(s, start, prompts[s][start..(start + n)], valid[s]), pool)[0];
                }
            }
            else logits = model.Forward(StepBatch.Contiguous([(s, 0, prompts[s])]), pool)[0];
            next[s] = ArgMax(logits, tokenizer.VocabSize);
        }
        var generated = prompts.Select(_ => new List<int>()).ToArray();
        var timer = Stopwatch.StartNew();
        int P = prompts[0].Length;
        for (int g = 0; g < outputTokens; g++)
        {
            for (int s = 0; s < B; s++) generated[s].Add(next[s]);
            if (layout.HasMemory && MemorySchedule.RefreshBeforeDecode(g, layout.Interval, out int q))
                for (int s = 0; s < B; s++) valid[s] = Attach(s, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(generated[s]).Slice(q, g - q));
            var seqs = new SequenceSlice[B];
            var ids = new int[B];
            var pos = new int[B];
            for (int s = 0; s < B; s++)
            {
                ids[s] = next[s];
                pos[s] = layout.ContextPosition + P + g;
                seqs[s] = new SequenceSlice(s, s, 1, layout.ContextCacheStart + P + g, MemoryStart: layout.MemoryStart, MemoryLength: layout.MemoryLength, MemoryValid: valid[s]);
            }
            var logits = model.Forward(new StepBatch { TokenIds = ids, Positions = pos, Sequences = seqs }, pool);
            for (int s = 0; s < B; s++) next[s] = ArgMax(logits[s], tokenizer.VocabSize);
        }
        timer.Stop();
        retrievals = r;
        retrievalMs = rMs;
        return B * outputTokens / timer.Elapsed.TotalSeconds;
    }

    /// <summary>p50/p99 of fetching one chunk's memories (ids of real references) from each tier in turn.</summary>
    public static IReadOnlyList<TierLatency> TierLatencies(MemoryBank bank, int chunk = 5, int samples = 200)
    {
        var ids = bank.Disk.EnumerateAll().Select(r => r.Id).ToList();
        if (ids.Count < chunk) throw new InvalidOperationException($"the bank holds {ids.Count} memories; need at least {chunk}");
        var rng = new Random(3);
        List<string> Pick() => Enumerable.Range(0, chunk).Select(_ => ids[rng.Next(ids.Count)]).Distinct().ToList();
        var result = new List<TierLatency>();
        var disk = new List<double>();
        var redis = new List<double>();
        var process = new List<double>();
        var decoder = MemoryCodec.For(bank.Shape, bank.Quantizer);
        var redisStore = bank.RedisStore;
        var cache = new InProcessMemoryCache(new InProcessMemoryCacheOptions { SizeLimitBytes = 1L << 30 });
        for (int i = 0; i < samples; i++)
        {
            var pick = Pick();
            var sw = Stopwatch.StartNew();
            var recs = bank.Disk.GetManyAsync(pick).AsTask().GetAwaiter().GetResult();
            var decoded = recs.Select(x => decoder.Decode(x!)).ToList();   // a disk hit includes dequantization
            disk.Add(sw.Elapsed.TotalMilliseconds);
            if (redisStore is not null)
            {
                redisStore.PutManyAsync(recs!).AsTask().GetAwaiter().GetResult();
                sw.Restart();
                var fromRedis = redisStore.GetManyAsync(pick).AsTask().GetAwaiter().GetResult();
                foreach (var x in fromRedis) if (x is not null) decoder.Decode(x);
                redis.Add(sw.Elapsed.TotalMilliseconds);
            }
            foreach (var d in decoded) cache.Set(d);
            sw.Restart();
            foreach (var id in pick) cache.TryGet(id, out _);
            process.Add(sw.Elapsed.TotalMilliseconds);
        }
        cache.Dispose();
        result.Add(Summ("process", process));
        if (redis.Count > 0) result.Add(Summ("redis", redis));
        result.Add(Summ("disk", disk));
        return result;
    }

    private static TierLatency Summ(string tier, List<double> xs)
    {
        var s = xs.Order().ToArray();
        return new TierLatency(tier, s.Length, s[s.Length / 2], s[Math.Min(s.Length - 1, (int)Math.Ceiling(s.Length * 0.99) - 1)]);
    }

    private static int ArgMax(float[] v, int limit)
    {
        Memory3.Engine.Model.Sampling.SamplingMath.MaxArg(v.AsSpan(0, Math.Min(limit, v.Length)), out int a);
        return a;
    }
}
