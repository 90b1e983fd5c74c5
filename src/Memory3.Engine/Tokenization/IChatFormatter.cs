using Memory3.Engine.Tokenization.ChatTemplates;

namespace Memory3.Engine.Tokenization;

/// <summary>A chat template could not render these messages (its own <c>raise_exception</c>, or a failure): the API answers 400.</summary>
public sealed class ChatFormatException(string message, bool raisedByTemplate = false) : Exception(message)
{
    /// <summary>The template raised the error itself; the message is the template's.</summary>
    public bool RaisedByTemplate { get; } = raisedByTemplate;
}

/// <summary>Renders chat messages into the prompt text a model expects (its <c>chat_template</c>).</summary>
public interface IChatFormatter
{
    string Format(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt);
}

/// <summary>
/// The formatter for a tokenizer's <c>chat_template</c>: the Jinja-subset renderer (<see cref="ChatTemplate"/>), given
/// the tokenizer's special tokens (<c>bos_token</c>, <c>eos_token</c>) as transformers passes them. Null when the
/// tokenizer has no template.
/// </summary>
public static class ChatFormatters
{
    public static IChatFormatter? For(ITokenizer tokenizer)
    {
        if (string.IsNullOrEmpty(tokenizer.ChatTemplate)) return null;
        var extra = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (tokenizer.BosTokenId is int bos && tokenizer.IdToToken(bos) is { } b) extra["bos_token"] = b;
        if (tokenizer.EosTokenIds.Count > 0 && tokenizer.IdToToken(tokenizer.EosTokenIds[0]) is { } e) extra["eos_token"] = e;
        foreach (var name in new[] { "pad_token", "unk_token" }) extra.TryAdd(name, null);
        try
        {
            return new TemplateFormatter(ChatTemplate.Parse(tokenizer.ChatTemplate), extra);
        }
        catch (ChatTemplateException ex)
        {
            return new BrokenFormatter($"the model's chat_template cannot be rendered by this server: {ex.Message}");
        }
    }

    private sealed class TemplateFormatter(ChatTemplate template, IReadOnlyDictionary<string, object?> extra) : IChatFormatter
    {
        public string Format(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt)
        {
            var list = new List<ChatMessage>(messages.Count);
            foreach (var (role, content) in messages) list.Add(new ChatMessage(role, content));
            try
            {
                return template.Render(list, addGenerationPrompt, extra);
            }
            catch (ChatTemplateException ex)
            {
                throw new ChatFormatException(ex.RaisedByTemplate ? ex.Message : $"the chat template failed: {ex.Message}", ex.RaisedByTemplate);
            }
        }
    }

    private sealed class BrokenFormatter(string message) : IChatFormatter
    {
        public string Format(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt) => throw new ChatFormatException(message);
    }
}
