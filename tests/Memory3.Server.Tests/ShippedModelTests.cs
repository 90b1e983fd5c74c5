using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Memory3.Server.Api.Memory;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace Memory3.Server.Tests;

/// <summary>
/// The shipped default (issue 5): <c>models/memory3-tiny</c> as appsettings.json serves it — bf16, its knowledge base
/// seeded into an empty bank on first start, all-MiniLM-L6-v2 retrieval. Held-out facts, which the model never saw in
/// training, are answered with memory and not without: a guard on the whole memory path (encoding, selection, tiers,
/// retrieval, attention) against silent breakage.
/// </summary>
public class ShippedModelTests
{
    private const int Questions = 8;

    private static List<(string Question, string Answer, string Entity)> HeldOut()
    {
        var root = Hosting.RepositoryLayout.FindRoot(AppContext.BaseDirectory)!;
        return File.ReadLines(Path.Combine(root, "models/memory3-tiny/eval/facts.jsonl")).Take(Questions).Select(l =>
        {
            var j = JsonNode.Parse(l)!;
            return ((string)j["question"]!, (string)j["answer"]!, (string)j["entity"]!);
        }).ToList();
    }

    private static bool Matches(string answer, string expected) =>
        string.Equals(answer.Trim().TrimEnd('.').Trim(), expected, StringComparison.OrdinalIgnoreCase);

    [Fact]
    public async Task HeldOutFactsAreAnsweredWithMemoryAndNotWithout()
    {
        string bank = Path.Combine(Path.GetTempPath(), "m3-shipped-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using var f = new ServerFactory(new()
            {
                ["Memory3:Model:Path"] = "models/memory3-tiny", ["Memory3:Model:DType"] = "bfloat16",
                ["Memory3:Bank:Path"] = bank, ["Memory3:Bank:SeedKnowledge"] = "true",
            }, null);
            var http = await f.ReadyClientAsync();

            // First start seeds the empty bank from the model's knowledge/ folder, as an ordinary ingestion job.
            var seeder = f.Services.GetRequiredService<KnowledgeSeeder>();
            for (int i = 0; i < 600 && seeder.Job is null; i++) await Task.Delay(100);
            Assert.NotNull(seeder.Job);
            JsonNode? job = null;
            for (int i = 0; i < 1200; i++)
            {
                job = JsonNode.Parse(await http.GetStringAsync($"/v1/memories/jobs/{seeder.Job!.Id}"));
                if ((string?)job!["status"] is "succeeded" or "failed") break;
                await Task.Delay(100);
            }
            Assert.Equal("succeeded", (string?)job!["status"]);
            Assert.True((int)job["references"]! >= 100, job.ToJsonString());

            var chat = new ChatClient("memory3-tiny", new ApiKeyCredential("unused"), new OpenAIClientOptions
            {
                Endpoint = new Uri(http.BaseAddress!, "/v1"),
                Transport = new HttpClientPipelineTransport(http),
            });
            int withMemory = 0, without = 0;
            var log = new List<string>();
            foreach (var (q, a, entity) in HeldOut())
            {
                ChatCompletion c = await chat.CompleteChatAsync([new UserChatMessage(q)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 });
                string got = c.Content[0].Text;
                if (Matches(got, a)) withMemory++;

                var off = await http.PostAsJsonAsync("/v1/chat/completions", new
                {
                    model = "memory3-tiny", temperature = 0, max_tokens = 12,
                    messages = new[] { new { role = "user", content = q } },
                    memory = new { enabled = false },
                });
                var body = JsonNode.Parse(await off.Content.ReadAsStringAsync())!;
                string gotOff = (string)body["choices"]![0]!["message"]!["content"]!;
                if (Matches(gotOff, a)) without++;
                log.Add($"{q} -> memory '{got}', none '{gotOff}' (expected '{a}')");
            }
            string report = string.Join("\n", log);
            Assert.True(withMemory >= Questions * 3 / 4, $"with memory {withMemory}/{Questions}\n{report}");
            Assert.True(without <= 1, $"without memory {without}/{Questions}\n{report}");

            // The citations show which references each window read: the questioned entity's is among them.
            var (q0, _, e0) = HeldOut()[0];
            var cited = await http.PostAsJsonAsync("/v1/chat/completions", new
            {
                model = "memory3-tiny", temperature = 0, max_tokens = 4, messages = new[] { new { role = "user", content = q0 } },
            });
            var block = JsonNode.Parse(await cited.Content.ReadAsStringAsync())!["memory"]!;
            var texts = block["windows"]![0]!["references"]!.AsArray().Select(r => (string)r!["text"]!).ToList();
            Assert.Contains(texts, t => t.Contains(e0, StringComparison.Ordinal));
        }
        finally
        {
            try { Directory.Delete(bank, true); } catch (IOException) { }
        }
    }
}
