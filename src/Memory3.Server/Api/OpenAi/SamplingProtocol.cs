using System.ComponentModel;
using System.Text.Json.Serialization;

namespace Memory3.Server.Api.OpenAi;

/// <summary>Fields chat and text completions share: OpenAI's sampling parameters plus vLLM's extras.</summary>
public abstract class SamplingRequest
{
    /// <summary>The served model id (see GET /v1/models). Omitted: the served model.</summary>
    [Description("Model id (GET /v1/models); omitted means the served model.")]
    public string? Model { get; set; }
    /// <summary>Stream the answer as server-sent events, ending with <c>data: [DONE]</c>.</summary>
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    /// <summary>Choices to generate for the prompt (1..Engine:MaxN).</summary>
    public int? N { get; set; }
    /// <summary>Up to any number of strings that end a choice; the stop string is not returned. A string or a list.</summary>
    [JsonConverter(typeof(StringOrListConverter))]
    public List<string>? Stop { get; set; }
    /// <summary>Most tokens to generate. Omitted: the rest of the context (chat) or 16 (completions).</summary>
    public int? MaxTokens { get; set; }
    /// <summary>0..2; 0 is greedy.</summary>
    public float? Temperature { get; set; }
    /// <summary>(0, 1].</summary>
    public float? TopP { get; set; }
    /// <summary>Reproducible sampling; choice i of n uses seed + i.</summary>
    public long? Seed { get; set; }
    /// <summary>-2..2.</summary>
    public float? PresencePenalty { get; set; }
    /// <summary>-2..2.</summary>
    public float? FrequencyPenalty { get; set; }
    /// <summary>Token id (as a string) → bias in -100..100 added to its logit.</summary>
    public Dictionary<string, float>? LogitBias { get; set; }
    /// <summary>An end-user id; accepted and ignored.</summary>
    public string? User { get; set; }
    /// <summary>vLLM: keep the k most likely tokens; -1 or 0 disables.</summary>
    public int? TopK { get; set; }
    /// <summary>vLLM: 0..1, drop tokens below min_p × the top probability.</summary>
    public float? MinP { get; set; }
    /// <summary>vLLM: &gt; 0; 1 disables.</summary>
    public float? RepetitionPenalty { get; set; }
    /// <summary>vLLM: extra token ids that end a choice.</summary>
    public List<int>? StopTokenIds { get; set; }
    /// <summary>vLLM: keep generating past the end-of-sequence token.</summary>
    public bool? IgnoreEos { get; set; }
    /// <summary>Memory3: explicit memory (enabled, namespaces, memories_per_chunk, retrieval_interval).</summary>
    public Memory3.Server.Api.Memory.MemoryRequestOptions? Memory { get; set; }
}

public sealed class StreamOptions
{
    /// <summary>Send a last chunk with <c>usage</c> (and empty <c>choices</c>) before <c>[DONE]</c>.</summary>
    public bool? IncludeUsage { get; set; }
}

public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);
