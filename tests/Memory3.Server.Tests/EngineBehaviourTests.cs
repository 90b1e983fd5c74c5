using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Tests;

/// <summary>Overload, disconnects and step failures, over a fake runner.</summary>
public class EngineBehaviourTests
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [Fact]
    public async Task OverloadGives429WithRetryAfter()
    {
        var runner = new FakeRunner(slots: 1) { DelayMs = 20 };
        await using var f = new ServerFactory(new() { ["Memory3:Engine:MaxNumSeqs"] = "1", ["Memory3:Engine:MaxBatchedTokens"] = "16", ["Memory3:Engine:MaxQueue"] = "1", ["Memory3:Engine:RetryAfterSeconds"] = "3" }, runner);
        var c = await f.ReadyClientAsync();
        using var cts = new CancellationTokenSource();
        var first = c.PostAsync("/v1/completions", Json("""{"prompt":[1,2,3],"max_tokens":400}"""), cts.Token);
        for (int i = 0; i < 300 && f.Engine.GetStats().Running == 0; i++) await Task.Delay(10);
        var second = c.PostAsync("/v1/completions", Json("""{"prompt":[1,2,3],"max_tokens":400}"""), cts.Token);
        for (int i = 0; i < 300 && f.Engine.GetStats().Waiting == 0; i++) await Task.Delay(10);
        var third = await c.PostAsync("/v1/completions", Json("""{"prompt":[1,2,3],"max_tokens":4}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.Equal("3", third.Headers.GetValues("Retry-After").Single());
        var e = JsonNode.Parse(await third.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("rate_limit_exceeded", (string?)e["code"]);
        cts.Cancel();
        await Task.WhenAll(first.ContinueWith(_ => { }), second.ContinueWith(_ => { }));
        await f.WaitIdleAsync();
    }

    [Fact]
    public async Task DroppedStreamFreesItsSequence()
    {
        var runner = new FakeRunner(slots: 2) { DelayMs = 5 };
        await using var f = new ServerFactory(null, runner);
        var c = await f.ReadyClientAsync();
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":400,"stream":true}""") };
        var resp = await c.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        var stream = await resp.Content.ReadAsStreamAsync();
        var buf = new byte[256];
        Assert.True(await stream.ReadAsync(buf) > 0);
        for (int i = 0; i < 300 && f.Engine.GetStats().Running == 0; i++) await Task.Delay(10);
        Assert.Equal(1, f.Engine.GetStats().Running);
        resp.Dispose();
        await f.WaitIdleAsync();
        Assert.True(f.Engine.GetStats().AbortedSequences >= 1);
    }

    [Fact]
    public async Task ForcedStepFailureFailsOnlyItsOwnRequest()
    {
        var runner = new FakeRunner(slots: 4) { DelayMs = 2 };
        await using var f = new ServerFactory(null, runner);
        var c = await f.ReadyClientAsync();
        var good = Enumerable.Range(0, 3).Select(i => c.PostAsync("/v1/completions", Json($$"""{"prompt":[{{i + 20}},21,22],"max_tokens":40}"""))).ToList();
        var bad = c.PostAsync("/v1/completions", Json($$"""{"prompt":[1,{{FakeRunner.PoisonToken}},3],"max_tokens":40}"""));
        var badStream = c.PostAsync("/v1/completions", Json($$"""{"prompt":[1,{{FakeRunner.PoisonToken}},3],"max_tokens":40,"stream":true}"""));
        foreach (var g in good) Assert.Equal(HttpStatusCode.OK, (await g).StatusCode);
        foreach (var g in good) Assert.Equal(40, (int)JsonNode.Parse(await (await g).Content.ReadAsStringAsync())!["usage"]!["completion_tokens"]!);
        var b = await bad;
        Assert.Equal(HttpStatusCode.InternalServerError, b.StatusCode);
        Assert.Equal("server_error", (string?)JsonNode.Parse(await b.Content.ReadAsStringAsync())!["error"]!["type"]);
        var bs = await (await badStream).Content.ReadAsStringAsync();
        Assert.Contains("\"error\"", bs);
        Assert.EndsWith("data: [DONE]\n\n", bs);
        Assert.True(f.Engine.GetStats().FailedSteps >= 1);
        await f.WaitIdleAsync();
        Assert.Equal(HttpStatusCode.OK, (await c.PostAsync("/v1/completions", Json("""{"prompt":[5,6],"max_tokens":3}"""))).StatusCode);
    }

    [Fact]
    public async Task LoadingIs503ThenNoChatTemplateIs400()
    {
        var dir = Path.Combine(Path.GetTempPath(), "m3-notemplate-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var src = Path.Combine(RepoRoot(), "models", "tiny-random");
        foreach (var file in Directory.GetFiles(src)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        var cfgPath = Path.Combine(dir, "tokenizer_config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        cfg.Remove("chat_template");
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        try
        {
            var runner = new FakeRunner { Gate = new ManualResetEventSlim(false) };
            await using var f = new ServerFactory(new() { ["Memory3:Model:Path"] = dir, ["Memory3:Model:Name"] = "plain" }, runner);
            var c = f.CreateClient();
            var ready = await c.GetAsync("/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Equal("application/problem+json", ready.Content.Headers.ContentType!.MediaType);
            var loading = await c.PostAsync("/v1/completions", Json("""{"prompt":"hi"}"""));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, loading.StatusCode);
            Assert.True(loading.Headers.Contains("Retry-After"));
            runner.Gate.Set();
            await f.Engine.Ready;
            var chat = await c.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}]}"""));
            Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
            Assert.Contains("chat template", await chat.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.OK, (await c.PostAsync("/v1/completions", Json("""{"model":"plain","prompt":"hi","max_tokens":2}"""))).StatusCode);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task ApiKeysAre401WhenMissingOrWrong()
    {
        await using var f = new ServerFactory(new()
        {
            ["Memory3:ApiKeys:0:Key"] = "sk-test-0123456789",
            ["Memory3:ApiKeys:0:Namespaces:0"] = "team-a",
        }, new FakeRunner());
        var c = await f.ReadyClientAsync();
        var none = await c.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("invalid_api_key", (string?)JsonNode.Parse(await none.Content.ReadAsStringAsync())!["error"]!["code"]);
        c.DefaultRequestHeaders.Authorization = new("Bearer", "sk-wrong-0000000000");
        Assert.Equal(HttpStatusCode.Unauthorized, (await c.PostAsync("/v1/completions", Json("""{"prompt":"hi"}"""))).StatusCode);
        var tok = await c.PostAsync("/tokenize", Json("""{"prompt":"hi"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, tok.StatusCode);
        Assert.Equal("application/problem+json", tok.Content.Headers.ContentType!.MediaType);
        c.DefaultRequestHeaders.Authorization = new("Bearer", "sk-test-0123456789");
        Assert.Equal(HttpStatusCode.OK, (await c.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await c.PostAsync("/v1/completions", Json("""{"prompt":"hi","max_tokens":2}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await c.GetAsync("/health")).StatusCode);
    }

    [Theory]
    [InlineData("Memory3:Engine:MaxNumSeqs", "0")]
    [InlineData("Memory3:Model:DType", "float8")]
    [InlineData("Memory3:Model:Path", "models/no-such-model")]
    [InlineData("Memory3:Telemetry:OtlpEndpoint", "not a uri")]
    public void BadSettingStopsStartupNamingTheKey(string key, string value)
    {
        using var f = new ServerFactory(new() { [key] = value }, new FakeRunner());
        var e = Assert.ThrowsAny<Exception>(() => f.CreateClient());
        var messages = e is OptionsValidationException o ? string.Join("; ", o.Failures) : e.ToString();
        Assert.Contains(key, messages);
    }

    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Memory3.sln"))) return d.FullName;
        throw new InvalidOperationException("repository root not found");
    }
}
