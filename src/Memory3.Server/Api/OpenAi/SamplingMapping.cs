using System.Globalization;
using Memory3.Engine.Inference;
using Memory3.Engine.Model.Sampling;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.OpenAi;

/// <summary>Request fields → engine request, with every check the API makes before enqueueing.</summary>
public static class SamplingMapping
{
    public static void CheckModel(string? model, ModelHost host)
    {
        if (!string.IsNullOrEmpty(model) && model != host.Id)
            throw new ApiException(404, $"The model '{model}' does not exist (this server serves '{host.Id}').", "model", "invalid_request_error", "model_not_found");
    }

    /// <param name="maxTokensParam">The field the completion budget came from (max_tokens or max_completion_tokens).</param>
    /// <param name="defaultMaxTokens">Null: the rest of the context (vLLM).</param>
    public static EngineRequest ToEngineRequest(SamplingRequest r, int[] prompt, string promptParam, int? maxTokens, string maxTokensParam,
        int? defaultMaxTokens, int? logprobs, string logprobsParam, ModelHost host)
    {
        int n = r.N ?? 1;
        var opts = host.Engine.Options;
        if (n < 1 || n > opts.MaxN) throw ApiException.BadRequest($"n must be between 1 and {opts.MaxN}, got {n}", "n");
        if (prompt.Length == 0) throw ApiException.BadRequest("the prompt is empty", promptParam);
        if (prompt.Length >= host.MaxModelLen)
            throw ApiException.BadRequest($"This model's maximum context length is {host.MaxModelLen} tokens. However, your {PromptWord(promptParam)} {prompt.Length} tokens.", promptParam, "context_length_exceeded");
        int room = host.MaxModelLen - prompt.Length;
        int max = maxTokens ?? Math.Min(defaultMaxTokens ?? room, room);
        if (max < 1) throw ApiException.BadRequest($"{maxTokensParam} must be at least 1, got {max}", maxTokensParam);
        if (max > room)
            throw ApiException.BadRequest(
                $"This model's maximum context length is {host.MaxModelLen} tokens. However, you requested {prompt.Length + max} tokens ({prompt.Length} in the {PromptNoun(promptParam)}, {max} in the completion). Please reduce the length of the {PromptNoun(promptParam)} or {maxTokensParam}.",
                maxTokensParam, "context_length_exceeded");

        Dictionary<int, float>? bias = null;
        if (r.LogitBias is { Count: > 0 })
        {
            bias = new Dictionary<int, float>(r.LogitBias.Count);
            foreach (var (k, v) in r.LogitBias)
            {
                if (!int.TryParse(k, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                    throw ApiException.BadRequest($"logit_bias keys must be token ids, got '{k}'", "logit_bias");
                bias[id] = v;
            }
        }
        var p = new SamplingParams
        {
            Temperature = r.Temperature ?? 1f,
            TopP = r.TopP ?? 1f,
            TopK = r.TopK ?? -1,
            MinP = r.MinP ?? 0f,
            PresencePenalty = r.PresencePenalty ?? 0f,
            FrequencyPenalty = r.FrequencyPenalty ?? 0f,
            RepetitionPenalty = r.RepetitionPenalty ?? 1f,
            LogitBias = bias,
            Seed = r.Seed is long s ? unchecked((ulong)s) : null,
            MaxTokens = max,
            Stop = r.Stop ?? [],
            StopTokenIds = r.StopTokenIds ?? [],
            IgnoreEos = r.IgnoreEos ?? false,
            Logprobs = logprobs,
        };
        try
        {
            p.Validate(host.Config.VocabSize);
        }
        catch (SamplingParamException e)
        {
            var param = e.ParamName switch { "top_logprobs" => logprobsParam, "max_tokens" => maxTokensParam, var x => x };
            var message = e.ParamName == "top_logprobs" ? e.Message.Replace("top_logprobs", logprobsParam, StringComparison.Ordinal) : e.Message;
            throw ApiException.BadRequest(message, param);
        }
        return new EngineRequest { PromptTokens = prompt, Sampling = p, N = n };
    }

    private static string PromptWord(string param) => param == "messages" ? "messages resulted in" : "prompt has";
    private static string PromptNoun(string param) => param == "messages" ? "messages" : "prompt";

    public static string FinishReasonText(FinishReason? f) => f switch { FinishReason.Stop => "stop", FinishReason.Length => "length", _ => "stop" };

    /// <summary>A failed step surfaces as a 500 in the envelope.</summary>
    public static ApiException StepFailure(string error) => new(500, error, null, "server_error", "engine_error");

    public static long UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    public static string NewId(string prefix) => prefix + Guid.NewGuid().ToString("N")[..24];
}
