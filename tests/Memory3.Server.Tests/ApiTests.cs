using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Memory3.Server.Tests;

/// <summary>Every endpoint and every error, over the default model.</summary>
public class ApiTests(ServerFactory factory) : IClassFixture<ServerFactory>
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonNode> ErrorAsync(HttpResponseMessage r, HttpStatusCode status, string? param)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(status == r.StatusCode, $"{r.StatusCode}: {text}");
        var e = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrEmpty((string?)e["message"]));
        Assert.NotNull((string?)e["type"]);
        Assert.Equal(param, (string?)e["param"]);
        return e;
    }

    [Fact]
    public async Task HealthReadyVersionMetricsSwagger()
    {
        var c = await factory.ReadyClientAsync();
        Assert.Equal("ok", (string?)JsonNode.Parse(await c.GetStringAsync("/health"))!["status"]);
        var ready = JsonNode.Parse(await c.GetStringAsync("/ready"))!;
        Assert.Equal("ready", (string?)ready["status"]);
        Assert.Equal(8, (int)ready["engine"]!["total_slots"]!);
        Assert.Equal("tiny-random", (string?)JsonNode.Parse(await c.GetStringAsync("/version"))!["model"]);
        await c.PostAsync("/v1/completions", Json("""{"prompt":"hi","max_tokens":2}"""));
        var metrics = await c.GetStringAsync("/metrics");
        foreach (var name in new[] { "memory3_request_time_to_first_token_seconds", "memory3_request_e2e_latency_seconds", "memory3_request_queue_time_seconds", "memory3_batch_tokens", "memory3_sequences_running", "memory3_sequences_waiting" })
            Assert.Contains(name, metrics);
        var swagger = JsonNode.Parse(await c.GetStringAsync("/swagger/v1/swagger.json"))!;
        foreach (var path in new[] { "/v1/chat/completions", "/v1/completions", "/v1/models", "/tokenize", "/detokenize", "/health", "/ready", "/version",
                                     "/v1/embeddings", "/v1/memories", "/v1/memories/{id}", "/v1/memories/jobs/{id}", "/v1/memories/search" })
            Assert.NotNull(swagger["paths"]![path]);
        var chatPost = swagger["paths"]!["/v1/chat/completions"]!["post"]!;
        Assert.NotNull(chatPost["requestBody"]!["content"]!["application/json"]!["example"]);
        var schemas = swagger["components"]!["schemas"]!.AsObject().Select(p => p.Key).ToList();
        Assert.Contains(schemas, k => k.Contains("ChatCompletionRequest"));
        Assert.Contains(schemas, k => k.Contains("OpenAiErrorResponse"));
        Assert.Equal(HttpStatusCode.OK, (await c.GetAsync("/swagger/index.html")).StatusCode);
    }

    [Fact]
    public async Task ModelsListGetAndUnknown()
    {
        var c = await factory.ReadyClientAsync();
        var list = JsonNode.Parse(await c.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string?)list["object"]);
        Assert.Equal("tiny-random", (string?)list["data"]![0]!["id"]);
        Assert.Equal(512, (int)list["data"]![0]!["max_model_len"]!);
        Assert.Equal(HttpStatusCode.OK, (await c.GetAsync("/v1/models/tiny-random")).StatusCode);
        var e = await ErrorAsync(await c.GetAsync("/v1/models/nope"), HttpStatusCode.NotFound, "model");
        Assert.Equal("model_not_found", (string?)e["code"]);
    }

    [Fact]
    public async Task TokenizeAndDetokenize()
    {
        var c = await factory.ReadyClientAsync();
        var t = JsonNode.Parse(await (await c.PostAsync("/tokenize", Json("""{"prompt":"hello world","return_token_strs":true}"""))).Content.ReadAsStringAsync())!;
        var ids = t["tokens"]!.AsArray().Select(x => (int)x!).ToArray();
        Assert.Equal(ids.Length, (int)t["count"]!);
        Assert.Equal(ids.Length, t["token_strs"]!.AsArray().Count);
        var noSpecial = JsonNode.Parse(await (await c.PostAsync("/tokenize", Json("""{"prompt":"hello world","add_special_tokens":false}"""))).Content.ReadAsStringAsync())!;
        var d = JsonNode.Parse(await (await c.PostAsync("/detokenize", Json(new JsonObject { ["tokens"] = noSpecial["tokens"]!.DeepClone() }.ToJsonString()))).Content.ReadAsStringAsync())!;
        Assert.Equal("hello world", (string?)d["prompt"]);
        var chat = JsonNode.Parse(await (await c.PostAsync("/tokenize", Json("""{"messages":[{"role":"user","content":"hi"}]}"""))).Content.ReadAsStringAsync())!;
        Assert.True((int)chat["count"]! > 3);
        var bad = await c.PostAsync("/tokenize", Json("""{"prompt":5}"""));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.BadRequest, (await c.PostAsync("/detokenize", Json("""{"tokens":[999999]}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.PostAsync("/detokenize", Json("""{"model":"x","tokens":[1]}"""))).StatusCode);
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}""", "temperature")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"temperature":5}""", "temperature")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"top_p":0}""", "top_p")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"presence_penalty":3}""", "presence_penalty")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"frequency_penalty":-3}""", "frequency_penalty")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"repetition_penalty":0}""", "repetition_penalty")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"min_p":2}""", "min_p")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"top_k":-5}""", "top_k")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"abc":1}}""", "logit_bias")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"5":500}}""", "logit_bias")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":50}""", "top_logprobs")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"top_logprobs":2}""", "top_logprobs")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":100000}""", "max_tokens")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100000}""", "max_completion_tokens")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"n":1000}""", "n")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"n":0}""", "n")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"stop":[""]}""", "stop")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"stop":5}""", "stop")]
    [InlineData("""{"messages":[]}""", "messages")]
    [InlineData("""{"model":"tiny-random"}""", "messages")]
    [InlineData("""{"messages":[{"role":"wizard","content":"hi"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content[0].type")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}""", null)]
    [InlineData("""not json""", null)]
    [InlineData("""[1,2]""", null)]
    public async Task ChatBadRequestsAre400WithParam(string body, string? param)
    {
        var c = await factory.ReadyClientAsync();
        await ErrorAsync(await c.PostAsync("/v1/chat/completions", Json(body)), HttpStatusCode.BadRequest, param);
    }

    [Theory]
    [InlineData("""{"prompt":"hi","logprobs":50}""", "logprobs")]
    [InlineData("""{"prompt":[1,2,99999]}""", "prompt")]
    [InlineData("""{"prompt":["a","b"]}""", "prompt")]
    [InlineData("""{"prompt":[]}""", "prompt")]
    [InlineData("""{"max_tokens":3}""", "prompt")]
    [InlineData("""{"prompt":"hi","max_tokens":600}""", "max_tokens")]
    public async Task CompletionBadRequestsAre400WithParam(string body, string? param)
    {
        var c = await factory.ReadyClientAsync();
        await ErrorAsync(await c.PostAsync("/v1/completions", Json(body)), HttpStatusCode.BadRequest, param);
    }

    [Fact]
    public async Task PromptLongerThanContextIs400()
    {
        var c = await factory.ReadyClientAsync();
        var ids = string.Join(",", Enumerable.Repeat(300, 600));
        var e = await ErrorAsync(await c.PostAsync("/v1/completions", Json($$"""{"prompt":[{{ids}}],"max_tokens":1}""")), HttpStatusCode.BadRequest, "prompt");
        Assert.Equal("context_length_exceeded", (string?)e["code"]);
        var text = string.Concat(Enumerable.Repeat("hello world ", 400));
        await ErrorAsync(await c.PostAsync("/v1/chat/completions", Json(JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = text } } }))), HttpStatusCode.BadRequest, "messages");
    }

    [Fact]
    public async Task UnknownModelIs404()
    {
        var c = await factory.ReadyClientAsync();
        var e = await ErrorAsync(await c.PostAsync("/v1/chat/completions", Json("""{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}""")), HttpStatusCode.NotFound, "model");
        Assert.Equal("model_not_found", (string?)e["code"]);
    }

    [Fact]
    public async Task InvalidUtf8DeepNestingAndHugeBodiesAreRefused()
    {
        var c = await factory.ReadyClientAsync();
        var bytes = Encoding.UTF8.GetBytes("""{"messages":[{"role":"user","content":"X"}]}""");
        bytes[Array.IndexOf(bytes, (byte)'X')] = 0xFF;
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        await ErrorAsync(await c.PostAsync("/v1/chat/completions", content), HttpStatusCode.BadRequest, null);
        var deep = """{"messages":[{"role":"user","content":"hi"}],"x":""" + new string('[', 100) + new string(']', 100) + "}";
        await ErrorAsync(await c.PostAsync("/v1/chat/completions", Json(deep)), HttpStatusCode.BadRequest, null);
        var huge = """{"messages":[{"role":"user","content":""" + "\"" + new string('a', 5 * 1024 * 1024) + "\"}]}";
        var e = await ErrorAsync(await c.PostAsync("/v1/chat/completions", Json(huge)), HttpStatusCode.RequestEntityTooLarge, null);
        Assert.Equal("request_too_large", (string?)e["code"]);
    }

    [Fact]
    public async Task UnknownFieldsAreIgnored()
    {
        var c = await factory.ReadyClientAsync();
        var r = await c.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi","weird":1}],"max_tokens":2,"frobnicate":{"a":[1]},"user":"u1","temperature":0}"""));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task ChatWithNTwoLogprobsAndStopFields()
    {
        var c = await factory.ReadyClientAsync();
        var r = JsonNode.Parse(await (await c.PostAsync("/v1/chat/completions", Json(
            """{"messages":[{"role":"user","content":"hi"}],"n":2,"max_tokens":4,"seed":3,"temperature":1,"logprobs":true,"top_logprobs":2,"top_k":50,"min_p":0.01,"repetition_penalty":1.1,"presence_penalty":0.5,"frequency_penalty":0.5,"logit_bias":{"10":-100}}"""))).Content.ReadAsStringAsync())!;
        Assert.Equal("chat.completion", (string?)r["object"]);
        Assert.Equal(2, r["choices"]!.AsArray().Count);
        foreach (var ch in r["choices"]!.AsArray())
        {
            Assert.Equal("assistant", (string?)ch!["message"]!["role"]);
            var lp = ch["logprobs"]!["content"]!.AsArray();
            Assert.Equal(4, lp.Count);
            Assert.Equal(2, lp[0]!["top_logprobs"]!.AsArray().Count);
            Assert.Equal("length", (string?)ch["finish_reason"]);
        }
        Assert.Equal(8, (int)r["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task CompletionsNonStreamingStreamingEchoAndLogprobs()
    {
        var c = await factory.ReadyClientAsync();
        var r = JsonNode.Parse(await (await c.PostAsync("/v1/completions", Json("""{"prompt":"Once upon","max_tokens":5,"temperature":0,"logprobs":2,"echo":true}"""))).Content.ReadAsStringAsync())!;
        Assert.Equal("text_completion", (string?)r["object"]);
        var choice = r["choices"]![0]!;
        Assert.StartsWith("Once upon", (string?)choice["text"]);
        Assert.Equal(5, choice["logprobs"]!["tokens"]!.AsArray().Count);
        Assert.Equal(5, (int)r["usage"]!["completion_tokens"]!);

        var plain = JsonNode.Parse(await (await c.PostAsync("/v1/completions", Json("""{"prompt":"Once upon","max_tokens":6,"temperature":0}"""))).Content.ReadAsStringAsync())!;
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json("""{"prompt":"Once upon","max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}""") };
        var resp = await c.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType!.MediaType);
        var body = await resp.Content.ReadAsStringAsync();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events.Take(events.Count - 1).Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        Assert.Equal(6, (int)chunks[^1]["usage"]!["completion_tokens"]!);
        var streamed = string.Concat(chunks.SelectMany(ch => ch["choices"]!.AsArray()).Select(ch => (string?)ch!["text"]));
        Assert.Equal((string?)plain["choices"]![0]!["text"], streamed);
        Assert.Equal("length", chunks.SelectMany(ch => ch["choices"]!.AsArray()).Select(ch => (string?)ch!["finish_reason"]).Last(f => f is not null));
    }

    [Fact]
    public async Task EightConcurrentGreedyRequestsMatchAlone()
    {
        var c = await factory.ReadyClientAsync();
        async Task<string> Run(int i)
        {
            var r = await c.PostAsync("/v1/completions", Json($$"""{"prompt":"story {{i}}: {{new string('x', i * 3)}}","max_tokens":12,"temperature":0,"ignore_eos":true}"""));
            var text = await r.Content.ReadAsStringAsync();
            Assert.True(r.IsSuccessStatusCode, text);
            return (string)JsonNode.Parse(text)!["choices"]![0]!["text"]!;
        }
        var alone = new List<string>();
        for (int i = 0; i < 8; i++) alone.Add(await Run(i));
        var together = await Task.WhenAll(Enumerable.Range(0, 8).Select(Run));
        Assert.Equal(alone, together);
        await factory.WaitIdleAsync();
    }
}
