namespace Memory3.Engine.Model.Sampling;

/// <summary>A token and its log-probability (natural log).</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);

/// <summary>
/// The chosen token, its logprob, and (when <see cref="SamplingParams.Logprobs"/> is set) the top alternatives, most
/// likely first. Logprobs are the log-softmax of the logits after logit_bias and penalties, before temperature,
/// top-k, top-p and min-p (see <see cref="Sampler"/>). <see cref="TopLogprobs"/> is null when logprobs are off and
/// empty when 0 alternatives were asked for.
/// </summary>
public sealed record SampleResult(int TokenId, float Logprob, TokenLogprob[]? TopLogprobs);
