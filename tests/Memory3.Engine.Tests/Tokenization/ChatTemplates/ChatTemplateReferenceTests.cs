using System.Text.Json;
using System.Text.Json.Nodes;
using Memory3.Engine.Tokenization.ChatTemplates;

namespace Memory3.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Differential tests: the 97 real chat templates of @huggingface/ollama-utils, rendered on three conversations,
/// against Python's Jinja2 set up as transformers sets it up (Fixtures/chat_templates/make-reference.py wrote
/// reference.json). Outputs must be equal byte for byte; where Jinja2 failed, we must throw ChatTemplateException
/// (with the template's own message when it called raise_exception).
/// </summary>
public class ChatTemplateReferenceTests
{
    static readonly Lazy<JsonNode> Reference = new(() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "chat_templates", "reference.json")))!);

    public static IEnumerable<object[]> Cases() =>
        Reference.Value["cases"]!.AsArray().Select((c, i) => new object[] { i, c!["model"]!.GetValue<string>(), c["conversation"]!.GetValue<string>() });

    static List<ChatMessage> Conversation(string name)
    {
        var list = new List<ChatMessage>();
        foreach (var m in Reference.Value["conversations"]![name]!.AsArray())
        {
            var calls = m!["tool_calls"]?.AsArray().Select(tc => new ChatToolCall(
                tc!["id"]!.GetValue<string>(), tc["function"]!["name"]!.GetValue<string>(), tc["function"]!["arguments"]!.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))).ToList();
            list.Add(new ChatMessage(m["role"]!.GetValue<string>(), m["content"]?.GetValue<string>())
            {
                ToolCalls = calls,
                ToolCallId = m["tool_call_id"]?.GetValue<string>(),
            });
        }
        return list;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_jinja2(int index, string model, string conversation)
    {
        var c = Reference.Value["cases"]![index]!;
        Assert.Equal(model, c["model"]!.GetValue<string>());
        var template = ChatTemplateFixtures.FromCorpus(c["template"]!.GetValue<int>());
        var extra = new Dictionary<string, object?>
        {
            ["bos_token"] = "<s>",
            ["eos_token"] = "</s>",
            ["tools"] = conversation == "tools" ? Reference.Value["tools"]!.DeepClone() : null,
        };
        var agp = c["add_generation_prompt"]!.GetValue<bool>();
        var error = c["error"]?.GetValue<string>();
        if (error is null)
        {
            var t = ChatTemplate.Parse(template).WithTimeProvider(new FixedTime(new DateTimeOffset(2025, 3, 14, 9, 26, 53, TimeSpan.Zero)));
            Assert.Equal(c["output"]!.GetValue<string>(), t.Render(Conversation(conversation), agp, extra));
            return;
        }
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template).Render(Conversation(conversation), agp, extra));
        if (error == "raised")
        {
            Assert.True(ex.RaisedByTemplate, ex.Message);
            Assert.Equal(c["message"]!.GetValue<string>(), ex.Message);
        }
    }
}
