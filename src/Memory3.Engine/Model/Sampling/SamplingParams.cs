namespace Memory3.Engine.Model.Sampling;

/// <summary>
/// A sampling parameter outside its accepted range. <see cref="ArgumentException.ParamName"/> is the OpenAI/vLLM
/// request field name (<c>temperature</c>, <c>top_p</c>, <c>logit_bias</c>, ...), ready for the error envelope's
/// <c>param</c>; <see cref="Message"/> is the plain sentence, without .NET's " (Parameter 'x')" suffix.
/// </summary>
public sealed class SamplingParamException(string paramName, string message) : ArgumentException(message, paramName)
{
    private readonly string _message = message;
    public override string Message => _message;
}

/// <summary>
/// Per-request sampling parameters, with OpenAI semantics plus vLLM's <c>top_k</c>, <c>min_p</c>,
/// <c>repetition_penalty</c>, <c>stop_token_ids</c> and <c>ignore_eos</c>. Defaults are OpenAI's (no-ops).
/// </summary>
public sealed record SamplingParams
{
    /// <summary>Below this temperature sampling is greedy (vLLM's _SAMPLING_EPS).</summary>
    public const float GreedyEpsilon = 1e-5f;
    /// <summary>Most alternatives <c>top_logprobs</c> may ask for (OpenAI: 20).</summary>
    public const int MaxTopLogprobs = 20;

    public static SamplingParams Greedy { get; } = new() { Temperature = 0 };

    /// <summary>0..2; 0 (below <see cref="GreedyEpsilon"/>) is greedy.</summary>
    public float Temperature { get; init; } = 1;
    /// <summary>(0, 1]; 1 disables.</summary>
    public float TopP { get; init; } = 1;
    /// <summary>-1 or 0 disables; otherwise keep the k most likely tokens.</summary>
    public int TopK { get; init; } = -1;
    /// <summary>[0, 1]; drop tokens whose probability is below min_p times the top probability. 0 disables.</summary>
    public float MinP { get; init; }
    /// <summary>[-2, 2]; subtracted once from every token that appears in the generated text.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>[-2, 2]; subtracted once per occurrence in the generated text.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>&gt; 0; 1 disables. vLLM/HF: for tokens in prompt or output, logit &gt; 0 ? logit / p : logit * p.</summary>
    public float RepetitionPenalty { get; init; } = 1;
    /// <summary>Token id → bias in [-100, 100], added to the raw logits.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    /// <summary>Null: a random seed per sequence. Set: reproducible samples (same params, same logits → same tokens).</summary>
    public ulong? Seed { get; init; }
    /// <summary>≥ 1.</summary>
    public int MaxTokens { get; init; } = 16;
    /// <summary>Stop strings (non-empty); the stop string itself is not returned. See <see cref="StopChecker"/>.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Extra token ids that end generation (the EOS ids come from the model).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Keep generating past EOS (vLLM). Not the sampler's concern: the engine's stop logic reads it.</summary>
    public bool IgnoreEos { get; init; }
    /// <summary>Null: no logprobs. 0..20: report the chosen token's logprob and this many top alternatives.</summary>
    public int? Logprobs { get; init; }

    public bool IsGreedy => Temperature < GreedyEpsilon;

    /// <summary>Throws <see cref="SamplingParamException"/> (an <see cref="ArgumentException"/>) naming the first bad field.</summary>
    public void Validate(int vocabSize)
    {
        if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "vocabulary size must be positive");
        if (!(Temperature >= 0 && Temperature <= 2))
            Fail("temperature", $"temperature must be between 0 and 2, got {Temperature}");
        if (!(TopP > 0 && TopP <= 1))
            Fail("top_p", $"top_p must be in (0, 1], got {TopP}");
        if (TopK < -1)
            Fail("top_k", $"top_k must be -1 or 0 (disabled) or at least 1, got {TopK}");
        if (!(MinP >= 0 && MinP <= 1))
            Fail("min_p", $"min_p must be between 0 and 1, got {MinP}");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2))
            Fail("presence_penalty", $"presence_penalty must be between -2 and 2, got {PresencePenalty}");
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2))
            Fail("frequency_penalty", $"frequency_penalty must be between -2 and 2, got {FrequencyPenalty}");
        if (!(RepetitionPenalty > 0 && float.IsFinite(RepetitionPenalty)))
            Fail("repetition_penalty", $"repetition_penalty must be greater than 0, got {RepetitionPenalty}");
        if (LogitBias is not null)
        {
            foreach (var (token, bias) in LogitBias)
            {
                if ((uint)token >= (uint)vocabSize)
                    Fail("logit_bias", $"logit_bias token id {token} is outside the vocabulary [0, {vocabSize})");
                if (!(bias >= -100 && bias <= 100))
                    Fail("logit_bias", $"logit_bias value for token {token} must be between -100 and 100, got {bias}");
            }
        }
        if (MaxTokens < 1)
            Fail("max_tokens", $"max_tokens must be at least 1, got {MaxTokens}");
        if (Stop is null) Fail("stop", "stop must not be null");
        for (int i = 0; i < Stop.Count; i++)
            if (string.IsNullOrEmpty(Stop[i])) Fail("stop", "stop strings must not be empty");
        if (StopTokenIds is null) Fail("stop_token_ids", "stop_token_ids must not be null");
        for (int i = 0; i < StopTokenIds.Count; i++)
            if ((uint)StopTokenIds[i] >= (uint)vocabSize)
                Fail("stop_token_ids", $"stop_token_ids entry {StopTokenIds[i]} is outside the vocabulary [0, {vocabSize})");
        if (Logprobs is int n && (n < 0 || n > MaxTopLogprobs))
            Fail("top_logprobs", $"top_logprobs must be between 0 and {MaxTopLogprobs}, got {n}");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Fail(string param, string message) => throw new SamplingParamException(param, message);
}
