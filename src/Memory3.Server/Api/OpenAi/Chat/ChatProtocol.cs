using System.Text.Json;
using System.Text.Json.Serialization;

namespace Memory3.Server.Api.OpenAi.Chat;

/// <summary>POST /v1/chat/completions. Unknown fields are ignored.</summary>
public sealed class ChatCompletionRequest : SamplingRequest
{
    /// <summary>The conversation: roles system, developer, user, assistant or tool; content a string or a list of text parts.</summary>
    public List<ChatMessage>? Messages { get; set; }
    /// <summary>Newer name for max_tokens; wins when both are given.</summary>
    public int? MaxCompletionTokens { get; set; }
    /// <summary>Return the logprob of each generated token.</summary>
    public bool? Logprobs { get; set; }
    /// <summary>0..20 most likely alternatives per token (needs logprobs: true).</summary>
    public int? TopLogprobs { get; set; }
}

public sealed class ChatMessage
{
    public string? Role { get; set; }
    /// <summary>A string, or a list of parts <c>{"type":"text","text":"..."}</c>.</summary>
    public JsonElement? Content { get; set; }
    public string? Name { get; set; }
}

public sealed record ChatCompletionResponse(string Id, string Object, long Created, string Model, List<ChatChoice> Choices, Usage Usage)
{
    /// <summary>Memory3: the references each window read (present when the request read memory).</summary>
    public Memory3.Server.Api.Memory.MemoryBlock? Memory { get; init; }
}

public sealed record ChatChoice(
    int Index,
    ChatResponseMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ChatResponseMessage(string Role, [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Content);

public sealed record ChatLogprobs(List<ChatTokenLogprob> Content);

public sealed record ChatTokenLogprob(string Token, float Logprob, List<int> Bytes, List<ChatTopLogprob> TopLogprobs);

public sealed record ChatTopLogprob(string Token, float Logprob, List<int> Bytes);

public sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model, List<ChatChunkChoice> Choices, Usage? Usage = null)
{
    /// <summary>Memory3: on the last chunk (empty choices, before [DONE]) when the request read memory.</summary>
    public Memory3.Server.Api.Memory.MemoryBlock? Memory { get; init; }
}

public sealed record ChatChunkChoice(
    int Index,
    ChatDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ChatDelta(string? Role = null, string? Content = null);
