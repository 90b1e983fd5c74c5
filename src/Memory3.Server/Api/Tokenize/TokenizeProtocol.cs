using Memory3.Server.Api.OpenAi.Chat;

namespace Memory3.Server.Api.Tokenize;

/// <summary>vLLM's POST /tokenize: either <c>prompt</c> or <c>messages</c>.</summary>
public sealed class TokenizeRequest
{
    public string? Model { get; set; }
    public string? Prompt { get; set; }
    public List<ChatMessage>? Messages { get; set; }
    /// <summary>Default: true for a prompt, false for messages (the chat template carries its own).</summary>
    public bool? AddSpecialTokens { get; set; }
    /// <summary>Messages only; default true.</summary>
    public bool? AddGenerationPrompt { get; set; }
    public bool? ReturnTokenStrs { get; set; }
}

public sealed record TokenizeResponse(int Count, int MaxModelLen, List<int> Tokens, List<string>? TokenStrs);

/// <summary>vLLM's POST /detokenize.</summary>
public sealed class DetokenizeRequest
{
    public string? Model { get; set; }
    public List<int>? Tokens { get; set; }
}

public sealed record DetokenizeResponse(string Prompt);
