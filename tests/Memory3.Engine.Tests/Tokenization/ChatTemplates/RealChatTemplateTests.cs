using Memory3.Engine.Tokenization;
using Memory3.Engine.Tokenization.ChatTemplates;
using static Memory3.Engine.Tests.Tokenization.ChatTemplates.ChatTemplateFixtures;

namespace Memory3.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>
/// The real Qwen3, Qwen2.5, Llama-3, Mistral-7B-Instruct and Mixtral templates, and the project's ChatML template,
/// against expected prompts written out by hand from reading each template (and checked once with Python's Jinja2).
/// </summary>
public class RealChatTemplateTests
{
    static readonly ChatMessage[] WithSystem = [Sys("You are terse."), User("Hello!"), Assistant("Hi."), User("Name a colour.")];
    static readonly ChatMessage[] NoSystem = [User("Hello!"), Assistant("Hi, how can I help?"), User("What is 2+2?")];

    static string Render(string template, IReadOnlyList<ChatMessage> messages, bool agp, Dictionary<string, object?>? extra = null) =>
        ChatTemplate.Parse(template).Render(messages, agp, extra);

    // ---- Qwen3 ----

    [Fact]
    public void Qwen3_system_conversation_with_generation_prompt()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are terse.<|im_end|>\n" +
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi.<|im_end|>\n" +
            "<|im_start|>user\nName a colour.<|im_end|>\n" +
            "<|im_start|>assistant\n",
            Render(FromConfig("qwen3"), WithSystem, true));
    }

    [Fact]
    public void Qwen3_system_conversation_without_generation_prompt()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are terse.<|im_end|>\n" +
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi.<|im_end|>\n" +
            "<|im_start|>user\nName a colour.<|im_end|>\n",
            Render(FromConfig("qwen3"), WithSystem, false));
    }

    [Fact]
    public void Qwen3_without_system_message()
    {
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi, how can I help?<|im_end|>\n" +
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
            "<|im_start|>assistant\n",
            Render(FromConfig("qwen3"), NoSystem, true));
    }

    [Fact]
    public void Qwen3_enable_thinking_false_adds_an_empty_think_block()
    {
        var extra = new Dictionary<string, object?> { ["enable_thinking"] = false };
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi, how can I help?<|im_end|>\n" +
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
            "<|im_start|>assistant\n<think>\n\n</think>\n\n",
            Render(FromConfig("qwen3"), NoSystem, true, extra));
        // enable_thinking true is not `false`: no block.
        Assert.EndsWith("<|im_start|>assistant\n", Render(FromConfig("qwen3"), NoSystem, true, new() { ["enable_thinking"] = true }));
    }

    [Fact]
    public void Qwen3_drops_earlier_thinking_and_keeps_it_after_the_last_user_turn()
    {
        ChatMessage[] earlier = [User("Hi"), Assistant("<think>\nGreet back.\n</think>\n\nHello!"), User("Bye")];
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
            Render(FromConfig("qwen3"), earlier, false));

        ChatMessage[] last = [User("Hi"), Assistant("<think>\nGreet back.\n</think>\n\nHello!")];
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet back.\n</think>\n\nHello!<|im_end|>\n",
            Render(FromConfig("qwen3"), last, false));

        ChatMessage[] separate = [User("Hi"), new ChatMessage("assistant", "Hello!") { ReasoningContent = "Greet back." }];
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet back.\n</think>\n\nHello!<|im_end|>\n",
            Render(FromConfig("qwen3"), separate, false));
    }

    [Fact]
    public void Qwen3_tools_and_tool_calls()
    {
        var tools = System.Text.Json.JsonDocument.Parse("""[{"type":"function","function":{"name":"now","description":"Time, in °C","parameters":{}}}]""").RootElement;
        ChatMessage[] msgs =
        [
            User("Time?"),
            new ChatMessage("assistant", "") { ToolCalls = [new ChatToolCall("c1", "now", """{"tz": "UTC"}""")] },
            new("tool", "12:00"),
        ];
        Assert.Equal(
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
            "{\"type\": \"function\", \"function\": {\"name\": \"now\", \"description\": \"Time, in °C\", \"parameters\": {}}}\n</tools>\n\n" +
            "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
            "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\nTime?<|im_end|>\n" +
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"now\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n" +
            "<|im_start|>assistant\n",
            Render(FromConfig("qwen3"), msgs, true, new() { ["tools"] = tools }));
    }

    // ---- Qwen2.5 ----

    [Fact]
    public void Qwen2_5_system_conversation()
    {
        const string turns =
            "<|im_start|>system\nYou are terse.<|im_end|>\n" +
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi.<|im_end|>\n" +
            "<|im_start|>user\nName a colour.<|im_end|>\n";
        Assert.Equal(turns + "<|im_start|>assistant\n", Render(FromConfig("qwen2_5"), WithSystem, true));
        Assert.Equal(turns, Render(FromConfig("qwen2_5"), WithSystem, false));
    }

    [Fact]
    public void Qwen2_5_without_system_message_uses_its_default_system_prompt()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi, how can I help?<|im_end|>\n" +
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
            "<|im_start|>assistant\n",
            Render(FromConfig("qwen2_5"), NoSystem, true));
    }

    // ---- Llama-3 ----

    static readonly Dictionary<string, object?> Llama3Tokens = new() { ["bos_token"] = "<|begin_of_text|>", ["eos_token"] = "<|end_of_text|>" };

    [Fact]
    public void Llama3_system_conversation_always_ends_with_the_assistant_header()
    {
        const string expected =
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n";
        // This (original Llama-3) template ignores add_generation_prompt.
        Assert.Equal(expected, Render(FromConfig("llama3"), WithSystem, true, Llama3Tokens));
        Assert.Equal(expected, Render(FromConfig("llama3"), WithSystem, false, Llama3Tokens));
    }

    [Fact]
    public void Llama3_without_system_message_trims_content()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(FromConfig("llama3"), [User("  Tell me a joke.\n")], true, Llama3Tokens));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi, how can I help?<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(FromConfig("llama3"), NoSystem, true, Llama3Tokens));
    }

    // ---- Mistral ----

    static readonly Dictionary<string, object?> MistralTokens = new() { ["bos_token"] = "<s>", ["eos_token"] = "</s>" };

    [Fact]
    public void Mistral_user_assistant_user()
    {
        const string expected = "<s>[INST] Hello! [/INST]Hi, how can I help?</s> [INST] What is 2+2? [/INST]";
        Assert.Equal(expected, Render(Mistral, NoSystem, true, MistralTokens));
        Assert.Equal(expected, Render(Mistral, NoSystem, false, MistralTokens));
    }

    [Fact]
    public void Mistral_rejects_non_alternating_roles_with_its_own_message()
    {
        var t = ChatTemplate.Parse(Mistral);
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render([User("a"), User("b")], true, MistralTokens));
        Assert.True(ex.RaisedByTemplate);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", ex.Message);
        Assert.Null(ex.Line);

        // Mistral-7B-Instruct has no system role either: a system message first breaks the alternation.
        ex = Assert.Throws<ChatTemplateException>(() => t.Render(WithSystem, true, MistralTokens));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", ex.Message);

        ex = Assert.Throws<ChatTemplateException>(() => t.Render([User("a"), new("tool", "b")], true, MistralTokens));
        Assert.Equal("Only user and assistant roles are supported!", ex.Message);
    }

    [Fact]
    public void Mixtral_puts_the_system_message_into_the_last_user_turn()
    {
        Assert.Equal(
            "<s>[INST] Hello![/INST] Hi.</s>[INST] You are terse.\n\nName a colour.[/INST]",
            Render(Mixtral, WithSystem, true, MistralTokens));
        Assert.Equal(
            "<s>[INST] Hello![/INST] Hi, how can I help?</s>[INST] What is 2+2?[/INST]",
            Render(Mixtral, NoSystem, false, MistralTokens));
        var ex = Assert.Throws<ChatTemplateException>(() => Render(Mixtral, [Sys("s"), Assistant("a")], true, MistralTokens));
        Assert.Equal("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...", ex.Message);
    }

    // ---- the project's ChatML template ----

    [Fact]
    public void ChatML_of_the_random_models()
    {
        const string turns =
            "<|im_start|>system\nYou are terse.<|im_end|>\n" +
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\nHi.<|im_end|>\n" +
            "<|im_start|>user\nName a colour.<|im_end|>\n";
        Assert.Equal(turns + "<|im_start|>assistant\n", Render(RandomTokenizer.ChatTemplate, WithSystem, true));
        Assert.Equal(turns, Render(RandomTokenizer.ChatTemplate, WithSystem, false));
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi, how can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            Render(RandomTokenizer.ChatTemplate, NoSystem, true));
    }

    [Fact]
    public void Content_parts_are_flattened()
    {
        var m = ChatMessage.FromParts("user", [new ChatContentPart("text", "Hello"), new ChatContentPart("image_url", null), new ChatContentPart("text", "there")]);
        Assert.Equal("<|im_start|>user\nHello\nthere<|im_end|>\n", Render(RandomTokenizer.ChatTemplate, [m], false));
    }
}
