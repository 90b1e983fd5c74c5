namespace Memory3.Engine.Tokenization;

/// <summary>A chat template could not render these messages, or this build cannot render the model's template.</summary>
public sealed class ChatFormatException(string message) : Exception(message);

/// <summary>Renders chat messages into the prompt text a model expects (its <c>chat_template</c>).</summary>
public interface IChatFormatter
{
    string Format(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt);
}

/// <summary>
/// Picks the formatter for a tokenizer's <c>chat_template</c>. For now only the exact ChatML template of the default
/// model (<see cref="RandomTokenizer.ChatTemplate"/>) is rendered; the Jinja-subset renderer replaces this.
/// Returns null when the tokenizer has no template.
/// </summary>
public static class ChatFormatters
{
    public static IChatFormatter? For(ITokenizer tokenizer) => tokenizer.ChatTemplate switch
    {
        null or "" => null,
        RandomTokenizer.ChatTemplate => new ChatMlFormatter(),
        _ => new UnsupportedChatFormatter(),
    };

    private sealed class ChatMlFormatter : IChatFormatter
    {
        public string Format(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt)
        {
            var sb = new System.Text.StringBuilder();
            foreach (var (role, content) in messages) sb.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");
            if (addGenerationPrompt) sb.Append("<|im_start|>assistant\n");
            return sb.ToString();
        }
    }

    private sealed class UnsupportedChatFormatter : IChatFormatter
    {
        public string Format(IReadOnlyList<(string Role, string Content)> messages, bool addGenerationPrompt) =>
            throw new ChatFormatException("this build cannot render the model's chat_template yet (only the ChatML template of the default model is supported)");
    }
}
