using System.Text;

namespace Memory3.Engine.Tokenization.ChatTemplates;

/// <summary>
/// A Hugging Face chat template (the Jinja2 <c>chat_template</c> of <c>tokenizer_config.json</c>), parsed once and
/// rendered per request the way transformers' <c>apply_chat_template</c> does: Jinja with <c>trim_blocks</c> and
/// <c>lstrip_blocks</c>, <c>raise_exception</c>, <c>strftime_now</c> and a <c>tojson</c> that does not escape HTML.
/// The supported subset of Jinja is described in docs/chat-templates.md.
/// </summary>
public sealed class ChatTemplate
{
    readonly List<Stmt> body;

    ChatTemplate(string source, List<Stmt> body)
    {
        Source = source;
        this.body = body;
    }

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    /// <summary>Clock behind <c>strftime_now</c>; tests set a fixed one.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Parses <paramref name="source"/>; throws <see cref="ChatTemplateException"/> (with line and column) on syntax outside the supported subset.</summary>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(source, TemplateParser.Parse(source));
    }

    /// <summary>A copy that reads the clock from <paramref name="time"/>.</summary>
    public ChatTemplate WithTimeProvider(TimeProvider time) => new(Source, body) { TimeProvider = time };

    /// <summary>
    /// Renders the prompt. Variables: <c>messages</c>, <c>add_generation_prompt</c>, <c>tools</c> and
    /// <c>documents</c> (none unless given), then every entry of <paramref name="extra"/> (which may override them):
    /// <c>bos_token</c>, <c>eos_token</c>, <c>tools</c>, <c>enable_thinking</c>, <c>date_string</c>, ...
    /// Values may be strings, numbers, booleans, null, lists, dictionaries, <see cref="System.Text.Json.JsonElement"/> or
    /// <see cref="System.Text.Json.Nodes.JsonNode"/>. Throws <see cref="ChatTemplateException"/> when the template raises
    /// an error or fails.
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var globals = new Scope(null);
        Builtins.AddGlobals(globals, TimeProvider);
        var s = new Scope(globals);
        var list = new List<object?>(messages.Count);
        foreach (var m in messages) list.Add(Py.FromMessage(m));
        s.Set("messages", list);
        s.Set("add_generation_prompt", addGenerationPrompt);
        s.Set("tools", null);
        s.Set("documents", null);
        if (extra is not null)
            foreach (var (k, v) in extra) s.Set(k, Py.FromDotNet(v));
        var sb = new StringBuilder();
        try
        {
            Stmt.ExecAll(body, s, sb);
        }
        catch (InsufficientExecutionStackException)
        {
            throw new ChatTemplateException("template recursion is too deep");
        }
        return sb.ToString();
    }
}
