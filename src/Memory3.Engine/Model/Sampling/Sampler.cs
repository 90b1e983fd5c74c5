using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;

namespace Memory3.Engine.Model.Sampling;

/// <summary>
/// Picks the next token of one sequence from its logits (vLLM/OpenAI semantics). One instance per sequence: it owns
/// the sequence's RNG and its incremental token counts. Not thread-safe; call it from the engine thread.
/// </summary>
/// <remarks>
/// <para>Order, applied in place to <c>logits</c>:
/// 1. <c>logit_bias</c> added to the raw logits;
/// 2. <c>repetition_penalty</c> p (vLLM/HF), once per distinct token in prompt ∪ generated: logit &gt; 0 ? logit / p : logit * p;
/// 3. <c>frequency_penalty</c> f and <c>presence_penalty</c> r (OpenAI): for each token generated c &gt; 0 times,
///    logit = logit - f * c, then logit = logit - r.
/// On return <c>logits</c> hold exactly these processed logits. The next steps do not write them:
/// 4. temperature T: T &lt; 1e-5 is greedy (argmax, ties to the lowest id, no division, no RNG draw); otherwise
///    probabilities are softmax(logits / T);
/// 5. top-k (keep the k most likely; ties to the lowest id), then top-p over the renormalised survivors (keep the
///    smallest most-likely-first prefix whose cumulative probability ≥ top_p, at least one token), then min-p (drop
///    tokens whose probability is below min_p × the top probability; the top token always survives);
/// 6. an inverse-CDF draw with one uniform double from xoshiro256**.</para>
/// <para>Logprobs (OpenAI's choice, and ours): the log-softmax of the processed logits of step 3, that is after
/// bias and penalties and BEFORE temperature, top-k, top-p and min-p. So a token's reported logprob does not depend
/// on the temperature or the filters, and a filtered-out token still has a finite logprob. A token whose processed
/// logit is -inf has logprob -inf; the API layer clamps that for JSON (OpenAI writes -9999).</para>
/// <para>Cost per call: O(V) vectorised passes (max, exp) plus, with top-k or top-p, a radix pre-selection: a
/// 4096-bucket histogram over the top bits of the logits (counts for top-k, probability mass for top-p) picks the
/// buckets that can hold the answer, and only their tokens get sort keys; then a quickselect (top-k) and a sort of
/// a growing most-likely prefix (top-p: 64, 256, ... candidates). Nothing sorts or selects over the whole vocabulary.
/// Penalties cost O(distinct prompt tokens + distinct generated tokens); generated-token counts are updated
/// incrementally from the tokens appended since the previous call. Vocabulary-sized scratch (weights, keys) is
/// per thread, shared by all samplers on the engine thread, so a sequence costs no vocabulary-sized memory.</para>
/// </remarks>
public sealed class Sampler
{
    private readonly SamplingParams _p;
    private readonly int _vocab;
    private Xoshiro256StarStar _rng;

    private readonly int[] _biasIds;
    private readonly float[] _biasValues;

    private readonly bool _greedy;
    private readonly float _invT;
    private readonly int _topK;        // 0: off
    private readonly float _topP;      // 1: off
    private readonly float _minP;      // 0: off

    private readonly bool _repetition;
    private readonly bool _freqPresence;
    private readonly bool _needCounts;
    private readonly Dictionary<int, int> _counts = [];
    private int _counted;
    private int[] _promptDistinct = [];
    private int _promptLength = -1;

    [ThreadStatic] private static float[]? t_weights;
    [ThreadStatic] private static ulong[]? t_keys;
    [ThreadStatic] private static int[]? t_hist;
    [ThreadStatic] private static double[]? t_mass;

    /// <summary>Validates <paramref name="p"/> (throws <see cref="SamplingParamException"/>).</summary>
    public Sampler(SamplingParams p, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(p);
        p.Validate(vocabSize);
        _p = p;
        _vocab = vocabSize;
        Seed = p.Seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        _rng = new Xoshiro256StarStar(Seed);

        int nb = p.LogitBias?.Count ?? 0;
        _biasIds = new int[nb];
        _biasValues = new float[nb];
        if (p.LogitBias is not null)
        {
            int i = 0;
            foreach (var (id, bias) in p.LogitBias) { _biasIds[i] = id; _biasValues[i] = bias; i++; }
        }

        _greedy = p.IsGreedy;
        _invT = _greedy ? 1f : 1f / p.Temperature;
        _topK = p.TopK > 0 && p.TopK < vocabSize ? p.TopK : 0;
        _topP = p.TopP;
        _minP = p.MinP;
        _repetition = p.RepetitionPenalty != 1f;
        _freqPresence = p.FrequencyPenalty != 0f || p.PresencePenalty != 0f;
        _needCounts = _repetition || _freqPresence;
    }

    /// <summary>The seed of this sampler's generator: the request's, or a random one when it gave none.</summary>
    public ulong Seed { get; }

    public SamplingParams Params => _p;

    /// <summary>
    /// Applies bias and penalties to <paramref name="logits"/> in place (length = vocabulary size) and draws a token.
    /// <paramref name="generatedTokens"/> is the whole output so far; the sampler counts only what was appended since
    /// the last call (a shorter span than last time, e.g. after a preemption, is recounted from scratch).
    /// </summary>
    public SampleResult Sample(Span<float> logits, ReadOnlySpan<int> promptTokens, ReadOnlySpan<int> generatedTokens)
    {
        if (logits.Length != _vocab) ThrowLogitsLength(logits.Length);

        // 1. logit_bias
        for (int i = 0; i < _biasIds.Length; i++) logits[_biasIds[i]] += _biasValues[i];

        // 2-3. penalties
        if (_needCounts)
        {
            UpdateCounts(generatedTokens);
            if (_repetition) ApplyRepetition(logits, promptTokens);
            if (_freqPresence)
            {
                float f = _p.FrequencyPenalty, r = _p.PresencePenalty;
                foreach (var (id, count) in _counts)
                {
                    ref float l = ref logits[id];
                    l -= f * count;
                    l -= r;
                }
            }
        }

        ReadOnlySpan<float> x = logits;
        float m = SamplingMath.MaxArg(x, out int argmax);
        if (!float.IsFinite(m)) return Degenerate(argmax);

        int token;
        double logZ = double.NaN;   // log of the partition function of the processed logits (logprob space)
        if (_greedy || _topK == 1)
        {
            token = argmax;
        }
        else if (_topK == 0 && _topP >= 1f)
        {
            // Whole vocabulary; min-p as a weight threshold (weight = p_i / p_max, so keep weight >= min_p).
            var w = Weights().AsSpan(0, _vocab);
            double total = SamplingMath.ExpSum(x, m, _invT, _minP, w);
            if (_invT == 1f && _minP == 0f) logZ = m + Math.Log(total);
            token = SamplingMath.Walk(w, _rng.NextDouble() * total);
            if (token < 0) token = argmax;
        }
        else
        {
            token = SampleRanked(x, m, ref logZ);
            if (token < 0) token = argmax;
        }

        // Logprobs cost a vocabulary-sized exp pass of their own (unless sampling already made it): only on request.
        if (_p.Logprobs is not int n) return new SampleResult(token, float.NaN, null);
        if (double.IsNaN(logZ)) logZ = m + Math.Log(SamplingMath.ExpSum(x, m, 1f, 0f, default));
        return new SampleResult(token, (float)(x[token] - logZ), TopLogprobs(x, n, logZ));
    }

    /// <summary>Top-k, then top-p over the survivors, then min-p, then a draw; works on the thread's key buffer.</summary>
    private int SampleRanked(ReadOnlySpan<float> x, float m, ref double logZ)
    {
        var w = Weights();
        Span<ulong> keys = Keys();
        float invT = _invT;

        // Candidates: only tokens in the radix buckets that can hold the answer get a sort key (O(V) scans, no
        // vocabulary-sized sort or selection).
        int n;
        double z;   // sum of weights over the current candidates (weights relative to the top token: exp((l - m) / T))
        if (_topK > 0)
        {
            int b = SamplingMath.BucketOfKth(x, _topK, Hist());
            int c = SamplingMath.CollectKeys(x, b, keys);
            if (c < _topK) c = SamplingMath.CollectKeys(x, 0, keys);   // NaN logits skewed the histogram
            n = Math.Min(_topK, c);
            SamplingMath.SelectSmallest(keys[..c], n);
            z = 0;
            for (int j = 0; j < n; j++)
            {
                int id = SamplingMath.KeyId(keys[j]);
                float e = MathF.Exp((x[id] - m) * invT);
                w[id] = e;
                z += e;
            }
        }
        else
        {
            // Top-p alone: the nucleus lies in the buckets whose mass, from the top, first reaches top_p (a hair more,
            // so rounding can only widen the candidate set).
            z = SamplingMath.ExpSum(x, m, invT, 0f, w.AsSpan(0, _vocab));
            if (invT == 1f) logZ = m + Math.Log(z);
            int b = SamplingMath.BucketOfMass(x, w, _topP * z * (1 + 1e-6), Mass());
            n = SamplingMath.CollectKeys(x, b, keys);
            if (n == 0) return -1;
        }

        if (_topP < 1f)
        {
            // Sort a growing most-likely prefix until its mass reaches top_p of the candidates' mass.
            double target = _topP * z, cum = 0;
            int sorted = 0, c = Math.Min(n, 64), kept = n;
            while (true)
            {
                if (c < n) SamplingMath.SelectSmallest(keys.Slice(sorted, n - sorted), c - sorted);
                keys.Slice(sorted, c - sorted).Sort();
                bool reached = false;
                for (int j = sorted; j < c; j++)
                {
                    cum += w[SamplingMath.KeyId(keys[j])];
                    if (cum >= target) { kept = j + 1; reached = true; break; }
                }
                if (reached || c == n) break;
                sorted = c;
                c = (int)Math.Min(n, 4L * c);
            }
            n = kept;
        }

        // min-p (the top token has weight 1 and always survives), then the draw.
        float minP = _minP;
        double total = 0;
        for (int j = 0; j < n; j++)
        {
            float e = w[SamplingMath.KeyId(keys[j])];
            if (e >= minP) total += e;
        }
        double u = _rng.NextDouble() * total, run = 0;
        int last = -1;
        for (int j = 0; j < n; j++)
        {
            int id = SamplingMath.KeyId(keys[j]);
            float e = w[id];
            if (e <= 0 || e < minP) continue;
            last = id;
            run += e;
            if (run > u) return id;
        }
        return last;
    }

    private void UpdateCounts(ReadOnlySpan<int> generated)
    {
        if (generated.Length < _counted)
        {
            _counts.Clear();
            _counted = 0;
        }
        for (int i = _counted; i < generated.Length; i++)
        {
            int id = generated[i];
            if ((uint)id >= (uint)_vocab) continue;
            _counts[id] = _counts.GetValueOrDefault(id) + 1;
        }
        _counted = generated.Length;
    }

    private void ApplyRepetition(Span<float> logits, ReadOnlySpan<int> prompt)
    {
        if (prompt.Length != _promptLength)
        {
            // The prompt is fixed for a sequence: its distinct ids are computed once (sorted, for binary search).
            var ids = prompt.ToArray();
            Array.Sort(ids);
            int d = 0;
            for (int i = 0; i < ids.Length; i++)
            {
                if ((uint)ids[i] >= (uint)_vocab) continue;
                if (d == 0 || ids[i] != ids[d - 1]) ids[d++] = ids[i];
            }
            _promptDistinct = ids.AsSpan(0, d).ToArray();
            _promptLength = prompt.Length;
        }
        float p = _p.RepetitionPenalty;
        foreach (int id in _promptDistinct) Penalize(ref logits[id], p);
        foreach (var (id, _) in _counts)
            if (Array.BinarySearch(_promptDistinct, id) < 0) Penalize(ref logits[id], p);

        static void Penalize(ref float l, float p) => l = l > 0 ? l / p : l * p;
    }

    private static TokenLogprob[] TopLogprobs(ReadOnlySpan<float> x, int n, double logZ)
    {
        if (n == 0) return [];
        Span<int> ids = stackalloc int[n];
        Span<float> vals = stackalloc float[n];
        int count = 0;
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            if (count == n && !(v > vals[n - 1])) continue;   // also skips NaN; ties keep the lower id
            if (float.IsNaN(v)) continue;
            int pos = count < n ? count++ : n - 1;
            while (pos > 0 && v > vals[pos - 1]) { vals[pos] = vals[pos - 1]; ids[pos] = ids[pos - 1]; pos--; }
            vals[pos] = v;
            ids[pos] = i;
        }
        var result = new TokenLogprob[count];
        for (int j = 0; j < count; j++) result[j] = new TokenLogprob(ids[j], (float)(vals[j] - logZ));
        return result;
    }

    /// <summary>No finite maximum (all -inf, or +inf present): take the argmax and report it as certain.</summary>
    private SampleResult Degenerate(int argmax)
    {
        Debug.Assert((uint)argmax < (uint)_vocab);
        return _p.Logprobs switch
        {
            null => new SampleResult(argmax, float.NaN, null),
            0 => new SampleResult(argmax, 0f, []),
            _ => new SampleResult(argmax, 0f, [new TokenLogprob(argmax, 0f)]),
        };
    }

    private float[] Weights() => t_weights is { } w && w.Length >= _vocab ? w : (t_weights = new float[_vocab]);
    private static int[] Hist() => t_hist ??= new int[SamplingMath.BucketCount];
    private static double[] Mass() => t_mass ??= new double[SamplingMath.BucketCount];
    private ulong[] Keys() => t_keys is { } k && k.Length >= _vocab ? k : (t_keys = new ulong[_vocab]);

    [DoesNotReturn]
    private void ThrowLogitsLength(int length) =>
        throw new ArgumentException($"logits has {length} entries; the sampler was made for a vocabulary of {_vocab}", "logits");
}
