using Memory3.Engine.Model.Sampling;

namespace Memory3.Engine.Tests.Sampling;

public class SamplerTests
{
    private static float[] RandomLogits(Random r, int vocab, float scale = 4f)
    {
        var l = new float[vocab];
        for (int i = 0; i < vocab; i++) l[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return l;
    }

    private static double[] Softmax(ReadOnlySpan<float> logits, double temperature = 1)
    {
        double max = double.NegativeInfinity;
        foreach (var l in logits) max = Math.Max(max, l);
        var p = new double[logits.Length];
        double z = 0;
        for (int i = 0; i < p.Length; i++) { p[i] = Math.Exp((logits[i] - max) / temperature); z += p[i]; }
        for (int i = 0; i < p.Length; i++) p[i] /= z;
        return p;
    }

    private static double LogSoftmax(ReadOnlySpan<float> logits, int id)
    {
        double max = double.NegativeInfinity;
        foreach (var l in logits) max = Math.Max(max, l);
        double z = 0;
        foreach (var l in logits) z += Math.Exp(l - max);
        return logits[id] - max - Math.Log(z);
    }

    /// <summary>Ids ordered by descending logit, ties to the lower id.</summary>
    private static int[] Ranked(float[] logits)
    {
        var ids = Enumerable.Range(0, logits.Length).ToArray();
        Array.Sort(ids, (a, b) => logits[b] != logits[a] ? logits[b].CompareTo(logits[a]) : a.CompareTo(b));
        return ids;
    }

    private static List<int> Run(SamplingParams p, int vocab, int steps, int logitSeed)
    {
        var sampler = new Sampler(p, vocab);
        var r = new Random(logitSeed);
        int[] prompt = [1, 2, 3, 4, 5];
        var gen = new List<int>();
        for (int s = 0; s < steps; s++)
        {
            var logits = RandomLogits(r, vocab);
            gen.Add(sampler.Sample(logits, prompt, gen.ToArray()).TokenId);
        }
        return gen;
    }

    public static TheoryData<string> SeedConfigs => ["plain", "topk", "topp", "minp", "penalties"];

    private static SamplingParams Config(string name, ulong seed) => name switch
    {
        "plain" => new() { Seed = seed, Temperature = 1.2f },
        "topk" => new() { Seed = seed, TopK = 40, Temperature = 0.9f },
        "topp" => new() { Seed = seed, TopP = 0.9f, Temperature = 1.5f },
        "minp" => new() { Seed = seed, MinP = 0.05f },
        _ => new() { Seed = seed, RepetitionPenalty = 1.2f, FrequencyPenalty = 0.5f, PresencePenalty = 0.3f, TopK = 100, TopP = 0.95f },
    };

    [Theory]
    [MemberData(nameof(SeedConfigs))]
    public void SameSeed_GivesIdenticalSequences(string config)
    {
        var a = Run(Config(config, 12345), 1000, 400, 7);
        var b = Run(Config(config, 12345), 1000, 400, 7);
        Assert.Equal(a, b);
    }

    [Theory]
    [MemberData(nameof(SeedConfigs))]
    public void DifferentSeeds_GiveDifferentSequences(string config)
    {
        var a = Run(Config(config, 1), 1000, 400, 7);
        var b = Run(Config(config, 2), 1000, 400, 7);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Unseeded_SamplersDiffer()
    {
        var a = new Sampler(new SamplingParams(), 10);
        var b = new Sampler(new SamplingParams(), 10);
        Assert.NotEqual(a.Seed, b.Seed);
    }

    [Fact]
    public void Seed_Uses64Bits()
    {
        // Seeds equal in their low 32 bits must still give different streams.
        var a = Run(new SamplingParams { Seed = 5UL }, 1000, 200, 3);
        var b = Run(new SamplingParams { Seed = 5UL | (1UL << 40) }, 1000, 200, 3);
        Assert.NotEqual(a, b);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(1e-6f)]
    public void Greedy_IsArgmax_TiesToLowestId(float temperature)
    {
        var r = new Random(11);
        var sampler = new Sampler(new SamplingParams { Temperature = temperature, Logprobs = 2 }, 5000);
        for (int s = 0; s < 50; s++)
        {
            var logits = RandomLogits(r, 5000);
            int expected = Ranked(logits)[0];
            var res = sampler.Sample(logits, [], []);
            Assert.Equal(expected, res.TokenId);
            Assert.True(float.IsFinite(res.Logprob));
        }
        var tied = new float[5000];
        tied[37] = 3; tied[12] = 3; tied[90] = 3;
        Assert.Equal(12, sampler.Sample(tied, [], []).TokenId);
    }

    [Fact]
    public void TopK_NeverEmitsOutsideTopK()
    {
        var r = new Random(5);
        var logits = RandomLogits(r, 300, 1f);
        var top = Ranked(logits).Take(5).ToHashSet();
        var sampler = new Sampler(new SamplingParams { TopK = 5, Temperature = 2f, Seed = 9 }, 300);
        var seen = new HashSet<int>();
        for (int i = 0; i < 5000; i++)
        {
            int t = sampler.Sample((float[])logits.Clone(), [], []).TokenId;
            Assert.Contains(t, top);
            seen.Add(t);
        }
        Assert.Equal(top, seen);
    }

    [Theory]
    [InlineData(0.85f, 3)]   // 0.4, 0.7, 0.9 >= 0.85
    [InlineData(0.65f, 2)]   // 0.4, 0.7
    [InlineData(0.3f, 1)]    // the top token alone
    public void TopP_NeverEmitsOutsideNucleus(float topP, int nucleus)
    {
        double[] probs = [0.06, 0.4, 0.04, 0.2, 0.3];   // ranked ids: 1, 4, 3, 0, 2
        int[] rankedIds = [1, 4, 3, 0, 2];
        var logits = probs.Select(p => (float)Math.Log(p)).ToArray();
        var allowed = rankedIds.Take(nucleus).ToHashSet();
        var sampler = new Sampler(new SamplingParams { TopP = topP, Seed = 3 }, probs.Length);
        var counts = new int[probs.Length];
        const int N = 6000;
        for (int i = 0; i < N; i++)
        {
            int t = sampler.Sample((float[])logits.Clone(), [], []).TokenId;
            Assert.Contains(t, allowed);
            counts[t]++;
        }
        // Survivors are renormalised.
        double mass = allowed.Sum(id => probs[id]);
        foreach (int id in allowed) Assert.InRange(counts[id] / (double)N, probs[id] / mass - 0.03, probs[id] / mass + 0.03);
    }

    [Theory]
    [InlineData(0.35f)]
    [InlineData(0.62f)]
    public void TopP_ExactCut_WithinOneRadixBucket(float topP)
    {
        // Close logits share a radix bucket, so only the sorted walk can find the cut.
        var logits = new float[12];
        for (int i = 0; i < logits.Length; i++) logits[(i * 5) % 12] = 1.2f - 0.015f * i;
        var ranked = Ranked(logits);
        var p = Softmax(logits);
        double cum = 0;
        int nucleus = 0;
        while (cum < topP) cum += p[ranked[nucleus++]];
        var allowed = ranked.Take(nucleus).ToHashSet();
        var s = new Sampler(new SamplingParams { TopP = topP, Seed = 6 }, logits.Length);
        var seen = new HashSet<int>();
        for (int i = 0; i < 4000; i++)
        {
            int t = s.Sample((float[])logits.Clone(), [], []).TokenId;
            Assert.Contains(t, allowed);
            seen.Add(t);
        }
        Assert.Equal(allowed, seen);
    }

    [Fact]
    public void TopP_LargeVocabulary_UsesNucleusBeyondFirstPrefix()
    {
        // A nucleus of several hundred tokens in a shuffled 150k vocabulary exercises the growing-prefix selection.
        const int V = 151_936;
        var r = new Random(21);
        var logits = new float[V];
        for (int i = 0; i < V; i++) logits[i] = -20f;
        var perm = Enumerable.Range(0, V).OrderBy(_ => r.Next()).ToArray();
        for (int rank = 0; rank < 2000; rank++) logits[perm[rank]] = 5f - rank * 0.002f;
        var ranked = Ranked(logits);
        var p = Softmax(logits);
        const float topP = 0.5f;
        double cum = 0;
        int nucleus = 0;
        while (cum < topP) cum += p[ranked[nucleus++]];
        Assert.InRange(nucleus, 300, 1500);
        var rankOf = new int[V];
        for (int i = 0; i < V; i++) rankOf[ranked[i]] = i;

        var sampler = new Sampler(new SamplingParams { TopP = topP, Seed = 17 }, V);
        int maxRank = 0;
        for (int i = 0; i < 300; i++)
        {
            int t = sampler.Sample((float[])logits.Clone(), [], []).TokenId;
            maxRank = Math.Max(maxRank, rankOf[t]);
        }
        Assert.True(maxRank <= nucleus, $"rank {maxRank} outside nucleus of {nucleus}");   // one token of slack for rounding
        Assert.True(maxRank > 64, $"max rank {maxRank}: draws should reach past the first sorted prefix");
    }

    [Theory]
    [InlineData(0)]    // whole-vocabulary path
    [InlineData(5)]    // with top-k: ranked path (top-5 keeps token 2; min-p drops it)
    public void MinP_DropsTokensBelowThreshold(int topK)
    {
        double[] probs = [0.01, 0.5, 0.04, 0.2, 0.1, 0.15];   // min_p 0.1 -> threshold 0.05: keep 1, 3, 4, 5 (not 2, 0)
        var logits = probs.Select(p => (float)Math.Log(p)).ToArray();
        var sampler = new Sampler(new SamplingParams { MinP = 0.1f, TopK = topK, Seed = 4 }, probs.Length);
        HashSet<int> allowed = [1, 3, 4, 5];
        var seen = new HashSet<int>();
        for (int i = 0; i < 5000; i++)
        {
            int t = sampler.Sample((float[])logits.Clone(), [], []).TokenId;
            Assert.Contains(t, allowed);
            seen.Add(t);
        }
        Assert.Equal(allowed, seen);
    }

    [Fact]
    public void LogitBias_Minus100Bans_Plus100Forces()
    {
        var r = new Random(8);
        var logits = RandomLogits(r, 50, 3f);
        logits[7] = 10f;   // the favourite
        var ban = new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [7] = -100 }, Seed = 1, Temperature = 1.5f }, 50);
        var force = new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [31] = 100 }, Seed = 1, Temperature = 1.5f }, 50);
        var plain = new Sampler(new SamplingParams { Seed = 1, Temperature = 1.5f }, 50);
        int plainSevens = 0;
        for (int i = 0; i < 3000; i++)
        {
            Assert.NotEqual(7, ban.Sample((float[])logits.Clone(), [], []).TokenId);
            Assert.Equal(31, force.Sample((float[])logits.Clone(), [], []).TokenId);
            if (plain.Sample((float[])logits.Clone(), [], []).TokenId == 7) plainSevens++;
        }
        Assert.True(plainSevens > 2000);
    }

    [Fact]
    public void LogitBias_IsAddedToRawLogits()
    {
        float[] logits = [1f, 2f, -3f, 0.5f];
        var s = new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [0] = 2.5f, [2] = -1f }, Temperature = 0 }, 4);
        Assert.Equal(0, s.Sample(logits, [], []).TokenId);
        Assert.Equal([3.5f, 2f, -4f, 0.5f], logits);
    }

    [Fact]
    public void RepetitionPenalty_DividesPositive_MultipliesNegative_PromptOrGenerated()
    {
        float[] logits = [2f, 3f, -1.5f, 4f, -2f, 0.7f];
        float p = 1.3f;
        var s = new Sampler(new SamplingParams { RepetitionPenalty = p, Temperature = 0 }, 6);
        // prompt has 1 (twice) and 2; generated has 2 again and 4; 0, 3, 5 untouched. Each token penalised once.
        s.Sample(logits, [1, 2, 1], [2, 4, 4]);
        Assert.Equal([2f, 3f / p, -1.5f * p, 4f, -2f * p, 0.7f], logits);
    }

    [Fact]
    public void FrequencyAndPresencePenalties_SubtractPerCountAndOnce_GeneratedOnly()
    {
        float f = 0.4f, r = 0.25f;
        var s = new Sampler(new SamplingParams { FrequencyPenalty = f, PresencePenalty = r, Temperature = 0 }, 5);
        float[] logits = [1f, 2f, 3f, -1f, 0.5f];
        // prompt tokens are not penalised; generated: 1 once, 2 three times, 3 twice.
        s.Sample(logits, [0, 4], [2, 1, 2, 3, 2, 3]);
        Assert.Equal([1f, 2f - f * 1 - r, 3f - f * 3 - r, -1f - f * 2 - r, 0.5f], logits);

        // Incremental counting: two more tokens appended since the last call.
        float[] next = [1f, 2f, 3f, -1f, 0.5f];
        s.Sample(next, [0, 4], [2, 1, 2, 3, 2, 3, 0, 2]);
        Assert.Equal([1f - f - r, 2f - f - r, 3f - f * 4 - r, -1f - f * 2 - r, 0.5f], next);

        // A shorter history (e.g. after preemption) is recounted from scratch.
        float[] again = [1f, 2f, 3f, -1f, 0.5f];
        s.Sample(again, [0, 4], [3]);
        Assert.Equal([1f, 2f, 3f, -1f - f - r, 0.5f], again);
    }

    [Fact]
    public void Penalties_ApplyInOrder_BiasThenRepetitionThenFrequencyPresence()
    {
        float bias = 1.5f, p = 2f, f = 0.5f, r = 0.25f;
        var s = new Sampler(new SamplingParams
        {
            LogitBias = new Dictionary<int, float> { [1] = bias },
            RepetitionPenalty = p, FrequencyPenalty = f, PresencePenalty = r, Temperature = 0,
        }, 3);
        float[] logits = [0f, -1f, 1f];
        s.Sample(logits, [], [1, 1]);
        // (-1 + 1.5) = 0.5 > 0 -> / 2 = 0.25; then - 0.5 * 2 - 0.25 = -1.0
        Assert.Equal(((-1f + bias) / p) - f * 2 - r, logits[1]);
        Assert.Equal(-1f, logits[1]);
    }

    [Fact]
    public void Logprobs_AreLogSoftmaxBeforeTemperature_TopSortedDescending()
    {
        var r = new Random(13);
        var logits = RandomLogits(r, 1000, 5f);
        SamplingParams[] configs =
        [
            new() { Temperature = 0 }, new() { Temperature = 1 }, new() { Temperature = 0.5f },
            new() { Temperature = 1.7f, TopK = 50 }, new() { Temperature = 1, TopK = 50 },
            new() { Temperature = 0.7f, TopP = 0.9f }, new() { Temperature = 1, TopP = 0.9f },
            new() { Temperature = 1.2f, MinP = 0.1f }, new() { TopK = 20, TopP = 0.8f, MinP = 0.05f },
        ];
        foreach (var config in configs)
        {
            var s = new Sampler(config with { Logprobs = 5, Seed = 2 }, 1000);
            var res = s.Sample((float[])logits.Clone(), [], []);
            Assert.Equal(LogSoftmax(logits, res.TokenId), res.Logprob, 4);
            var top = res.TopLogprobs!;
            Assert.Equal(5, top.Length);
            var ranked = Ranked(logits);
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(ranked[i], top[i].TokenId);
                Assert.Equal(LogSoftmax(logits, ranked[i]), top[i].Logprob, 4);
                if (i > 0) Assert.True(top[i].Logprob <= top[i - 1].Logprob);
            }
            Assert.True(top.Sum(x => Math.Exp(x.Logprob)) <= 1 + 1e-6);
        }
    }

    [Fact]
    public void Logprobs_ReflectPenaltiesAndBias()
    {
        float[] raw = [1f, 2f, 3f];
        var s = new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [0] = 4f }, Temperature = 0, Logprobs = 3 }, 3);
        var res = s.Sample((float[])raw.Clone(), [], []);
        float[] processed = [5f, 2f, 3f];
        Assert.Equal(0, res.TokenId);
        Assert.Equal(LogSoftmax(processed, 0), res.Logprob, 5);
        Assert.Equal([0, 2, 1], res.TopLogprobs!.Select(x => x.TokenId));
        Assert.Equal(1.0, res.TopLogprobs!.Sum(x => Math.Exp(x.Logprob)), 5);
    }

    [Fact]
    public void Logprobs_OffGivesNaNAndNull_ZeroGivesLogprobAndEmpty()
    {
        float[] logits = [0f, 1f];
        var off = new Sampler(new SamplingParams(), 2).Sample((float[])logits.Clone(), [], []);
        Assert.Null(off.TopLogprobs);
        Assert.True(float.IsNaN(off.Logprob));   // not computed
        var zero = new Sampler(new SamplingParams { Logprobs = 0, Temperature = 0 }, 2).Sample((float[])logits.Clone(), [], []);
        Assert.Empty(zero.TopLogprobs!);
        Assert.Equal(LogSoftmax(logits, 1), zero.Logprob, 5);
    }

    [Theory]
    [InlineData(0.7f, 0, 1f)]     // whole-vocabulary path
    [InlineData(1f, 0, 1f)]
    [InlineData(1.3f, 6, 1f)]     // ranked path: top-k 6 of 8, renormalised
    [InlineData(1f, 0, 0.999f)]   // ranked path via top-p that keeps all 8
    public void Sampling_MatchesSoftmaxDistribution(float temperature, int topK, float topP)
    {
        float[] logits = [0.3f, 2.0f, -0.5f, 1.2f, 0.9f, -1.0f, 1.6f, 0.0f];
        var p = Softmax(logits, temperature);
        if (topK > 0)
        {
            var keep = Ranked(logits).Take(topK).ToHashSet();
            double mass = keep.Sum(i => p[i]);
            for (int i = 0; i < p.Length; i++) p[i] = keep.Contains(i) ? p[i] / mass : 0;
        }
        var s = new Sampler(new SamplingParams { Temperature = temperature, TopK = topK, TopP = topP, Seed = 2024 }, logits.Length);
        const int N = 40_000;
        var counts = new int[logits.Length];
        for (int i = 0; i < N; i++) counts[s.Sample((float[])logits.Clone(), [], []).TokenId]++;
        double chi2 = 0;
        int df = -1;
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] == 0) { Assert.Equal(0, counts[i]); continue; }
            double e = N * p[i];
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
            df++;
        }
        // chi-square critical value at p = 0.001 for df <= 7 is 24.3; the seed makes this deterministic.
        Assert.True(chi2 < 30, $"chi2 = {chi2:F1} with {df} degrees of freedom");
    }

    [Fact]
    public void Sample_RejectsWrongLogitsLength()
    {
        var s = new Sampler(new SamplingParams(), 10);
        Assert.Throws<ArgumentException>(() => s.Sample(new float[9], [], []));
    }

    [Fact]
    public void AllMinusInfinity_ExceptOne_IsForced()
    {
        var logits = new float[1000];
        Array.Fill(logits, float.NegativeInfinity);
        logits[444] = -3f;
        var s = new Sampler(new SamplingParams { Temperature = 1f, Seed = 1, Logprobs = 1 }, 1000);
        var res = s.Sample(logits, [], []);
        Assert.Equal(444, res.TokenId);
        Assert.Equal(0f, res.Logprob, 5);
    }
}
