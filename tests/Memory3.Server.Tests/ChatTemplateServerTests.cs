using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Memory3.Server.Tests;

/// <summary>The server renders the model's real chat_template (Jinja subset) with the tokenizer's special tokens.</summary>
public class ChatTemplateServerTests
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [Fact]
    public async Task TemplateGetsBosTokenAndItsRaiseExceptionIsA400()
    {
        var dir = Path.Combine(Path.GetTempPath(), "m3-template-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var src = Path.Combine(EngineBehaviourTests.RepoRoot(), "models", "tiny-random");
        foreach (var file in Directory.GetFiles(src)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        var cfgPath = Path.Combine(dir, "tokenizer_config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        cfg["chat_template"] = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System messages are not supported by this template.') }}{% endif %}" +
                               "[{{ m.role | upper }}] {{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT] {% endif %}";
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        try
        {
            await using var f = new ServerFactory(new() { ["Memory3:Model:Path"] = dir, ["Memory3:Model:Name"] = "templated" }, new FakeRunner());
            var c = await f.ReadyClientAsync();
            var t = JsonNode.Parse(await (await c.PostAsync("/tokenize", Json("""{"messages":[{"role":"user","content":"  hi there "}]}"""))).Content.ReadAsStringAsync())!;
            var d = JsonNode.Parse(await (await c.PostAsync("/detokenize", Json(new JsonObject { ["tokens"] = t["tokens"]!.DeepClone() }.ToJsonString()))).Content.ReadAsStringAsync())!;
            var bos = (string?)cfg["bos_token"] is { } b ? b : "<s>";
            Assert.Equal(bos + "[USER] hi there\n[ASSISTANT] ", (string?)d["prompt"]);

            var bad = await c.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}"""));
            var text = await bad.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var e = JsonNode.Parse(text)!["error"]!;
            Assert.Equal("System messages are not supported by this template.", (string?)e["message"]);
            Assert.Equal("messages", (string?)e["param"]);
            Assert.Equal(HttpStatusCode.OK, (await c.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""))).StatusCode);
        }
        finally { Directory.Delete(dir, true); }
    }
}
