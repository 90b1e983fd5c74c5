using System.Text.Json;
using System.Text.Json.Nodes;
using Memory3.Engine.Tokenization.ChatTemplates;

namespace Memory3.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>The real chat templates vendored under Fixtures/ (see Fixtures/chat_templates/NOTICE.md).</summary>
static class ChatTemplateFixtures
{
    static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    /// <summary>chat_template of a vendored tokenizer_config.json: "qwen3", "llama3" (Fixtures/tokenizers) or "qwen2_5" (Fixtures/chat_templates).</summary>
    public static string FromConfig(string name)
    {
        var path = name == "qwen2_5"
            ? Path.Combine(Fixtures, "chat_templates", name, "tokenizer_config.json")
            : Path.Combine(Fixtures, "tokenizers", name, "tokenizer_config.json");
        return JsonNode.Parse(File.ReadAllText(path))!["chat_template"]!.GetValue<string>();
    }

    static readonly Lazy<JsonArray> Corpus = new(() => JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures, "chat_templates", "ollama-utils-templates.json")))!.AsArray());

    /// <summary>A template from @huggingface/ollama-utils' table of real GGUF chat templates, by its model name.</summary>
    public static string FromCorpus(string model) =>
        Corpus.Value.Single(e => e!["model"]!.GetValue<string>() == model)!["template"]!.GetValue<string>();

    public static string FromCorpus(int index) => Corpus.Value[index]!["template"]!.GetValue<string>();

    public static IEnumerable<(string Model, string Template)> AllCorpus() =>
        Corpus.Value.Select(e => (e!["model"]!.GetValue<string>(), e["template"]!.GetValue<string>()));

    public static string Mistral => FromCorpus("library/mistral:7b-instruct-fp16");
    public static string Mixtral => FromCorpus("library/mixtral:8x22b");

    public static ChatMessage User(string c) => new("user", c);
    public static ChatMessage Assistant(string? c) => new("assistant", c);
    public static ChatMessage Sys(string c) => new("system", c);
}

/// <summary>A clock stopped at one instant, in UTC.</summary>
sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
