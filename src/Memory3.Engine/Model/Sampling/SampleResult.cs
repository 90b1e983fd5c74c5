namespace Memory3.Engine.Model.Sampling;

/// <summary>A token and its log-probability (natural log).</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);

/// <summary>
/// The chosen token, its logprob, and (when <see cref="SamplingParams.Logprobs"/> is set) the top alternatives, most
/// likely first. Logprobs are the log-softmax of the logits after logit_bias and penalties, before temperature,
/// top-k, top-p and min-p (see <see cref="Sampler"/>). When logprobs are off (<see cref="SamplingParams.Logprobs"/>
/// null) nothing is computed for them: <see cref="Logprob"/> is NaN and <see cref="TopLogprobs"/> null. With 0
/// alternatives asked for, <see cref="Logprob"/> is set and <see cref="TopLogprobs"/> is empty.
/// </summary>
public sealed record SampleResult(int TokenId, float Logprob, TokenLogprob[]? TopLogprobs);
