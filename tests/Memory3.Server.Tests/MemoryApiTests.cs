using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Memory3.Server.Tests;

/// <summary>The default model with a temp bank (hashing embedder: no 91 MB MiniLM load) and two keys: A (namespace a) and B (namespace b).</summary>
public sealed class MemoryServerFactory : ServerFactory
{
    public const string KeyA = "key-a-0123456789", KeyB = "key-b-0123456789";
    public string BankDir { get; }

    public MemoryServerFactory() : this(Path.Combine(Path.GetTempPath(), "m3-bank-" + Guid.NewGuid().ToString("N"))) { }

    private MemoryServerFactory(string bank) : base(new()
    {
        ["Memory3:Bank:Path"] = bank,
        ["Memory3:Bank:Embedder"] = "hashing",
        ["Memory3:ApiKeys:0:Key"] = KeyA, ["Memory3:ApiKeys:0:Name"] = "A", ["Memory3:ApiKeys:0:Namespaces:0"] = "a",
        ["Memory3:ApiKeys:1:Key"] = KeyB, ["Memory3:ApiKeys:1:Name"] = "B", ["Memory3:ApiKeys:1:Namespaces:0"] = "b",
    }, null) => BankDir = bank;

    public async Task<HttpClient> ClientAsync(string key)
    {
        var c = await ReadyClientAsync();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return c;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        try { Directory.Delete(BankDir, true); } catch (IOException) { }
    }
}

public class MemoryApiTests(MemoryServerFactory factory) : IClassFixture<MemoryServerFactory>
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
    private static async Task<JsonNode> Ok(HttpResponseMessage r, HttpStatusCode status = HttpStatusCode.OK)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(status == r.StatusCode, $"{r.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    private static async Task ErrorAsync(HttpResponseMessage r, HttpStatusCode status, string? param, string? code = null)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(status == r.StatusCode, $"{r.StatusCode}: {text}");
        var e = JsonNode.Parse(text)!["error"]!;
        Assert.Equal(param, (string?)e["param"]);
        if (code is not null) Assert.Equal(code, (string?)e["code"]);
    }

    private static async Task<JsonNode> IngestAsync(HttpClient c, string body)
    {
        var job = await Ok(await c.PostAsync("/v1/memories", Json(body)), HttpStatusCode.Accepted);
        return await WaitJobAsync(c, (string)job["id"]!);
    }

    private static async Task<JsonNode> WaitJobAsync(HttpClient c, string id)
    {
        for (int i = 0; i < 600; i++)
        {
            var j = await Ok(await c.GetAsync($"/v1/memories/jobs/{id}"));
            if ((string?)j["status"] is "succeeded" or "failed") return j;
            await Task.Delay(50);
        }
        throw new TimeoutException("ingestion job did not finish");
    }

    private static readonly string[] Facts =
    [
        "The Eiffel Tower in Paris is 330 metres tall and was finished in 1889.",
        "Zorblax crystals glow blue when cooled below minus forty degrees.",
        "The Memory3 model stores references as sparse quantized key-values.",
    ];

    [Fact]
    public async Task IngestThenListGetSearchDeleteWithNamespaceIsolation()
    {
        var a = await factory.ClientAsync(MemoryServerFactory.KeyA);
        var b = await factory.ClientAsync(MemoryServerFactory.KeyB);
        var job = await IngestAsync(a, new JsonObject { ["texts"] = new JsonArray(Facts.Select(f => (JsonNode)f).ToArray()) }.ToJsonString());
        Assert.Equal("succeeded", (string?)job["status"]);
        Assert.Equal("a", (string?)job["namespace"]);
        Assert.Equal(3, (int)job["documents"]!);
        Assert.Equal(3, (int)job["references"]! + (int)job["skipped"]!);
        var ready = await Ok(await a.GetAsync("/ready"));
        Assert.True((int)ready["bank"]!["references"]! >= 3);

        // Re-ingesting skips what is stored.
        var again = await IngestAsync(a, new JsonObject { ["text"] = Facts[0] }.ToJsonString());
        Assert.Equal(1, (int)again["skipped"]!);

        var list = await Ok(await a.GetAsync("/v1/memories?limit=2"));
        Assert.Equal("list", (string?)list["object"]);
        Assert.Equal(2, list["data"]!.AsArray().Count);
        Assert.True((bool)list["has_more"]!);
        var rest = await Ok(await a.GetAsync($"/v1/memories?limit=100&after={(string)list["last_id"]!}"));
        Assert.False((bool)rest["has_more"]!);
        var all = list["data"]!.AsArray().Concat(rest["data"]!.AsArray()).Select(x => (string)x!["id"]!).ToList();
        Assert.True(all.Count >= 3);
        Assert.Equal(all.OrderBy(x => x, StringComparer.Ordinal), all);

        var hits = await Ok(await a.PostAsync("/v1/memories/search", Json("""{"query":"How tall is the Eiffel Tower?","top_k":2}""")));
        var top = hits["data"]![0]!;
        Assert.Contains("Eiffel", (string)top["text"]!);
        Assert.Equal("a", (string?)top["namespace"]);
        string id = (string)top["id"]!;
        Assert.Contains("Eiffel", (string)(await Ok(await a.GetAsync($"/v1/memories/{id}")))["text"]!);

        // Key B sees nothing of A's: 404 everywhere, empty lists and searches.
        await ErrorAsync(await b.GetAsync($"/v1/memories/{id}"), HttpStatusCode.NotFound, "id", "memory_not_found");
        await ErrorAsync(await b.DeleteAsync($"/v1/memories/{id}"), HttpStatusCode.NotFound, "id", "memory_not_found");
        await ErrorAsync(await b.GetAsync($"/v1/memories/jobs/{(string)job["id"]!}"), HttpStatusCode.NotFound, "id");
        Assert.Empty((await Ok(await b.GetAsync("/v1/memories")))["data"]!.AsArray());
        Assert.Empty((await Ok(await b.PostAsync("/v1/memories/search", Json("""{"query":"Eiffel Tower"}"""))))["data"]!.AsArray());
        await ErrorAsync(await b.PostAsync("/v1/memories/search", Json("""{"query":"Eiffel","namespaces":["a"]}""")), HttpStatusCode.NotFound, "namespaces", "namespace_not_found");
        await ErrorAsync(await b.GetAsync("/v1/memories?namespace=a"), HttpStatusCode.NotFound, "namespace");
        await ErrorAsync(await b.PostAsync("/v1/memories", Json("""{"text":"x y z","namespace":"a"}""")), HttpStatusCode.NotFound, "namespace");
        await ErrorAsync(await a.GetAsync("/v1/memories/nope"), HttpStatusCode.NotFound, "id");
        await ErrorAsync(await a.PostAsync("/v1/memories/search", Json("""{"query":""}""")), HttpStatusCode.BadRequest, "query");
        await ErrorAsync(await a.PostAsync("/v1/memories", Json("""{"texts":[]}""")), HttpStatusCode.BadRequest, "texts");

        var del = await Ok(await a.DeleteAsync($"/v1/memories/{id}"));
        Assert.True((bool)del["deleted"]!);
        await ErrorAsync(await a.GetAsync($"/v1/memories/{id}"), HttpStatusCode.NotFound, "id");
        var after = await Ok(await a.PostAsync("/v1/memories/search", Json("""{"query":"Eiffel Tower","top_k":5}""")));
        Assert.DoesNotContain(after["data"]!.AsArray(), h => (string?)h!["id"] == id);
    }

    [Fact]
    public async Task MultipartFilesReportPerFileErrors()
    {
        var b = await factory.ClientAsync(MemoryServerFactory.KeyB);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("b"), "namespace");
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes("Quokkas live on Rottnest Island near Perth.\n\nThey are small marsupials.")), "files", "quokka.md");
        form.Add(new ByteArrayContent([0xff, 0xfe, 0x00, 0x01, 0x02]), "files", "binary.bin");
        form.Add(new ByteArrayContent([]), "files", "empty.txt");
        var job = await Ok(await b.PostAsync("/v1/memories", form), HttpStatusCode.Accepted);
        var done = await WaitJobAsync(b, (string)job["id"]!);
        Assert.Equal("succeeded", (string?)done["status"]);
        Assert.Equal(1, (int)done["documents"]!);
        Assert.Equal(2, (int)done["failed"]!);
        Assert.Equal(["binary.bin", "empty.txt"], done["errors"]!.AsArray().Select(e => (string)e!["source"]!).OrderBy(x => x));
        var hits = await Ok(await b.PostAsync("/v1/memories/search", Json("""{"query":"quokka Rottnest"}""")));
        Assert.Contains("Rottnest", (string)hits["data"]![0]!["text"]!);
    }

    [Fact]
    public async Task ChatAndCompletionsReadMemoryAndCiteIngestedReferences()
    {
        var a = await factory.ClientAsync(MemoryServerFactory.KeyA);
        await IngestAsync(a, new JsonObject { ["texts"] = new JsonArray(Facts.Select(f => (JsonNode)f).ToArray()) }.ToJsonString());
        var ids = (await Ok(await a.GetAsync("/v1/memories?limit=100")))["data"]!.AsArray().Select(x => (string)x!["id"]!).ToHashSet();

        string prompt = string.Join(" ", Enumerable.Repeat("Tell me about the Eiffel Tower in Paris and the Zorblax crystals.", 4));
        var body = new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 70, ["temperature"] = 0, ["ignore_eos"] = true };
        var r = await Ok(await a.PostAsync("/v1/completions", Json(body.ToJsonString())));
        int promptTokens = (int)r["usage"]!["prompt_tokens"]!;
        var mem = r["memory"]!;
        int expected = (promptTokens + 63) / 64 + 1; // one per 64-token prompt chunk, one refresh before generated token 64
        Assert.Equal(expected, (int)mem["usage"]!["memory_refreshes"]!);
        var windows = mem["windows"]!.AsArray();
        Assert.Equal(expected + 1, windows.Count); // + the first decoded chunk, which inherits the last prompt chunk's memories
        Assert.Equal("prompt", (string?)windows[0]!["phase"]);
        Assert.Equal(64, (int)windows[0]!["end"]!);
        Assert.Equal("decode", (string?)windows[^1]!["phase"]);
        Assert.Equal(70, (int)windows[^1]!["end"]!);
        var refs = windows.SelectMany(w => w!["references"]!.AsArray()).ToList();
        Assert.NotEmpty(refs);
        Assert.All(refs, x => Assert.Contains((string)x!["id"]!, ids));
        Assert.All(refs, x => Assert.Equal("a", (string?)x!["namespace"]));
        var u = mem["usage"]!;
        Assert.True((int)u["process_hits"]! + (int)u["redis_hits"]! + (int)u["disk_hits"]! > 0);

        // Chat, streamed: the memory block comes in the last chunk before [DONE].
        var chat = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "What glows blue? Zorblax crystals?" }),
            ["max_tokens"] = 5, ["temperature"] = 0, ["stream"] = true, ["memory"] = new JsonObject { ["memories_per_chunk"] = 2, ["retrieval_interval"] = 16 },
        };
        var sse = await (await a.PostAsync("/v1/chat/completions", Json(chat.ToJsonString()))).Content.ReadAsStringAsync();
        var events = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var last = JsonNode.Parse(events[^2])!;
        Assert.Empty(last["choices"]!.AsArray());
        var cites = last["memory"]!["windows"]!.AsArray().SelectMany(w => w!["references"]!.AsArray()).ToList();
        Assert.NotEmpty(cites);
        Assert.All(last["memory"]!["windows"]!.AsArray(), w => Assert.True(w!["references"]!.AsArray().Count <= 2));
    }

    [Fact]
    public async Task MemoryOffIsTheSameTextAsAServerWithoutABank()
    {
        var a = await factory.ClientAsync(MemoryServerFactory.KeyA);
        const string body = """{"prompt":"Once upon a time in a quiet village","max_tokens":24,"temperature":0,"ignore_eos":true,"memory":{"enabled":false}}""";
        var off = await Ok(await a.PostAsync("/v1/completions", Json(body)));
        Assert.Null(off["memory"]);
        await using var plain = new ServerFactory();
        var p = await plain.ReadyClientAsync();
        var baseline = await Ok(await p.PostAsync("/v1/completions", Json(body)));
        Assert.Equal((string?)baseline["choices"]![0]!["text"], (string?)off["choices"]![0]!["text"]);
        // Without a bank the memory endpoints are 404 and the memory object is accepted and ignored.
        await ErrorAsync(await p.GetAsync("/v1/memories"), HttpStatusCode.NotFound, null, "memory_bank_not_configured");
        var ignored = await Ok(await p.PostAsync("/v1/completions", Json("""{"prompt":"hi","max_tokens":2,"memory":{"enabled":true}}""")));
        Assert.Null(ignored["memory"]);
    }

    [Fact]
    public async Task BadMemoryParametersAre400WithTheirParam()
    {
        var a = await factory.ClientAsync(MemoryServerFactory.KeyA);
        await ErrorAsync(await a.PostAsync("/v1/completions", Json("""{"prompt":"hi","memory":{"retrieval_interval":0}}""")), HttpStatusCode.BadRequest, "memory.retrieval_interval");
        await ErrorAsync(await a.PostAsync("/v1/completions", Json("""{"prompt":"hi","memory":{"memories_per_chunk":99}}""")), HttpStatusCode.BadRequest, "memory.memories_per_chunk");
        await ErrorAsync(await a.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"memory":{"memories_per_chunk":0}}""")), HttpStatusCode.BadRequest, "memory.memories_per_chunk");
        await ErrorAsync(await a.PostAsync("/v1/completions", Json("""{"prompt":"hi","memory":{"enabled":"yes"}}""")), HttpStatusCode.BadRequest, "memory.enabled");
        await ErrorAsync(await a.PostAsync("/v1/completions", Json("""{"prompt":"hi","memory":{"namespaces":["b"]}}""")), HttpStatusCode.NotFound, "memory.namespaces", "namespace_not_found");
        await ErrorAsync(await a.PostAsync("/v1/completions", Json("""{"prompt":"hi","memory":{"namespaces":[""]}}""")), HttpStatusCode.BadRequest, "memory.namespaces[0]");
    }

    [Fact]
    public async Task EmbeddingsHaveOpenAisShapeAndAreDeterministic()
    {
        var a = await factory.ClientAsync(MemoryServerFactory.KeyA);
        var one = await Ok(await a.PostAsync("/v1/embeddings", Json("""{"input":["hello world","the Eiffel Tower"]}""")));
        Assert.Equal("list", (string?)one["object"]);
        var data = one["data"]!.AsArray();
        Assert.Equal(2, data.Count);
        Assert.Equal("embedding", (string?)data[1]!["object"]);
        Assert.Equal(1, (int)data[1]!["index"]!);
        var v = data[0]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
        Assert.Equal(384, v.Length);
        Assert.InRange(Math.Sqrt(v.Sum(x => (double)x * x)), 0.99, 1.01);
        Assert.True((int)one["usage"]!["prompt_tokens"]! > 0);
        var again = await Ok(await a.PostAsync("/v1/embeddings", Json("""{"input":"hello world","encoding_format":"base64"}""")));
        var bytes = Convert.FromBase64String((string)again["data"]![0]!["embedding"]!);
        var decoded = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, decoded, 0, bytes.Length);
        Assert.Equal(v, decoded);
        await ErrorAsync(await a.PostAsync("/v1/embeddings", Json("""{"input":[1,2]}""")), HttpStatusCode.BadRequest, "input[0]");
        await ErrorAsync(await a.PostAsync("/v1/embeddings", Json("""{"input":"x","encoding_format":"int8"}""")), HttpStatusCode.BadRequest, "encoding_format");
        await ErrorAsync(await a.PostAsync("/v1/embeddings", Json("""{"input":"x","model":"nope"}""")), HttpStatusCode.NotFound, "model");
    }
}
