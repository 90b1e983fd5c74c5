using System.Text.Json;
using System.Text.Json.Serialization;

namespace Memory3.Server.Api.OpenAi.Completions;

/// <summary>POST /v1/completions. Unknown fields are ignored.</summary>
public sealed class CompletionRequest : SamplingRequest
{
    /// <summary>A string, a list with one string, a list of token ids, or a list with one list of token ids.</summary>
    public JsonElement? Prompt { get; set; }
    /// <summary>0..20: return the chosen token's logprob and this many alternatives per token.</summary>
    public int? Logprobs { get; set; }
    /// <summary>Prepend the prompt to each choice's text.</summary>
    public bool? Echo { get; set; }
    /// <summary>Text appended after the completion (accepted, not supported: must be empty).</summary>
    public string? Suffix { get; set; }
}

public sealed record CompletionResponse(string Id, string Object, long Created, string Model, List<CompletionChoice> Choices, Usage? Usage)
{
    /// <summary>Memory3: the references each window read (present when the request read memory; streamed on the last chunk).</summary>
    public Memory3.Server.Api.Memory.MemoryBlock? Memory { get; init; }
}

public sealed record CompletionChoice(
    int Index,
    string Text,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] CompletionLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

/// <summary>The legacy completions logprobs shape.</summary>
public sealed record CompletionLogprobs(List<string> Tokens, List<float> TokenLogprobs, List<Dictionary<string, float>> TopLogprobs, List<int> TextOffset);
