namespace Memory3.Engine.Tokenization.ChatTemplates;

/// <summary>
/// One chat message as a chat template sees it (<c>message.role</c>, <c>message.content</c>, ...).
/// Optional fields are only visible to the template when set, so <c>message.name is defined</c> works as in transformers.
/// </summary>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary><c>message.tool_calls</c>: a list of <c>{id, type: "function", function: {name, arguments}}</c>.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary><c>message.name</c>.</summary>
    public string? Name { get; init; }

    /// <summary><c>message.tool_call_id</c> (tool results).</summary>
    public string? ToolCallId { get; init; }

    /// <summary><c>message.reasoning_content</c> (Qwen3 style thinking of an earlier assistant turn).</summary>
    public string? ReasoningContent { get; init; }

    /// <summary>
    /// A message whose OpenAI content is a list of parts: the text parts are joined with "\n" (as vLLM does);
    /// parts of other types are dropped.
    /// </summary>
    public static ChatMessage FromParts(string role, IEnumerable<ChatContentPart> parts)
    {
        var texts = new List<string>();
        foreach (var p in parts)
            if (p.Type == "text" && p.Text is not null) texts.Add(p.Text);
        return new ChatMessage(role, string.Join("\n", texts));
    }
}

/// <summary>One part of a list-valued OpenAI message content: <c>{type: "text", text: "..."}</c>.</summary>
public sealed record ChatContentPart(string Type, string? Text);

/// <summary>
/// An assistant's tool call. <see cref="Arguments"/> is the JSON text OpenAI sends; when it is a JSON object the
/// template sees it parsed (a mapping), as transformers and vLLM pass it, otherwise as the string.
/// </summary>
public sealed record ChatToolCall(string Id, string Name, string Arguments);
