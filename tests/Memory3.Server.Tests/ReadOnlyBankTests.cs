using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Memory3.Server.Tests;

/// <summary>
/// A serving replica over a read-only bank (Memory3:Bank:ReadOnly) beside a server that writes the same bank folder, as
/// on Kubernetes the serving pods and the ingestion Job share the shard volume.
/// </summary>
public class ReadOnlyBankTests
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonNode> Ok(HttpResponseMessage r, HttpStatusCode status = HttpStatusCode.OK)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(status == r.StatusCode, $"{r.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>OpenAI's envelope, 403, with the read-only code and a message that says what to do.</summary>
    private static async Task AssertReadOnlyError(HttpResponseMessage r)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Forbidden, $"{r.StatusCode}: {text}");
        Assert.StartsWith("application/json", r.Content.Headers.ContentType?.ToString());
        var root = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(["error"], root.Select(p => p.Key));
        var e = root["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], e.Select(p => p.Key));
        Assert.Equal("permission_error", (string?)e["type"]);
        Assert.Equal("memory_bank_read_only", (string?)e["code"]);
        Assert.Null((string?)e["param"]);
        Assert.Contains("read-only", (string)e["message"]!);
        Assert.Contains("Memory3:Bank:ReadOnly", (string)e["message"]!);
    }

    private static async Task<JsonNode> IngestAsync(HttpClient c, string text)
    {
        var job = await Ok(await c.PostAsync("/v1/memories", Json(new JsonObject { ["text"] = text }.ToJsonString())), HttpStatusCode.Accepted);
        for (int i = 0; i < 600; i++)
        {
            var j = await Ok(await c.GetAsync($"/v1/memories/jobs/{(string)job["id"]!}"));
            if ((string?)j["status"] is "succeeded" or "failed") return j;
            await Task.Delay(50);
        }
        throw new TimeoutException("ingestion job did not finish");
    }

    private static async Task<bool> FindsAsync(HttpClient c, string query, string needle)
    {
        var hits = await Ok(await c.PostAsync("/v1/memories/search", Json(new JsonObject { ["query"] = query, ["top_k"] = 3 }.ToJsonString())));
        return hits["data"]!.AsArray().Any(h => ((string?)h!["text"])?.Contains(needle) == true);
    }

    [Fact]
    public async Task AReadOnlyServerAnswers403InOpenAisEnvelopeForWritesAndServesWhatTheWriterAdds()
    {
        string bank = Path.Combine(Path.GetTempPath(), "m3-robank-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using var writer = new ServerFactory(new() { ["Memory3:Bank:Path"] = bank, ["Memory3:Bank:Embedder"] = "hashing" }, null);
            var w = await writer.ReadyClientAsync();
            Assert.Equal("succeeded", (string?)(await IngestAsync(w, "The Eiffel Tower in Paris is 330 metres tall."))["status"]);

            await using var reader = new ServerFactory(new()
            {
                ["Memory3:Bank:Path"] = bank, ["Memory3:Bank:Embedder"] = "hashing",
                ["Memory3:Bank:ReadOnly"] = "true", ["Memory3:Bank:RefreshSeconds"] = "0.1",
            }, null);
            var r = await reader.ReadyClientAsync();
            var ready = await Ok(await r.GetAsync("/ready"));
            Assert.True((bool)ready["bank"]!["read_only"]!);
            Assert.True(await FindsAsync(r, "How tall is the Eiffel Tower?", "Eiffel"));
            var list = await Ok(await r.GetAsync("/v1/memories"));
            string id = (string)list["data"]![0]!["id"]!;
            Assert.Contains("Eiffel", (string)(await Ok(await r.GetAsync($"/v1/memories/{id}")))["text"]!);

            // Writes are refused with 403 in the OpenAI envelope, before any job starts: JSON, multipart, delete.
            await AssertReadOnlyError(await r.PostAsync("/v1/memories", Json("""{"texts":["Zorblax crystals glow blue."]}""")));
            using (var form = new MultipartFormDataContent())
            {
                form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes("Quokkas live on Rottnest Island.")), "files", "quokka.md");
                await AssertReadOnlyError(await r.PostAsync("/v1/memories", form));
            }
            await AssertReadOnlyError(await r.DeleteAsync($"/v1/memories/{id}"));
            Assert.Contains("Eiffel", (string)(await Ok(await r.GetAsync($"/v1/memories/{id}")))["text"]!);   // still there

            // What the writer ingests next reaches the read-only server without a restart.
            await IngestAsync(w, "Zorblax crystals glow blue when cooled below minus forty degrees.");
            bool found = false;
            for (int i = 0; i < 200 && !found; i++)
            {
                found = await FindsAsync(r, "Which crystals glow blue?", "Zorblax");
                if (!found) await Task.Delay(50);
            }
            Assert.True(found, "the read-only server should pick up the writer's new memory by refreshing");
            ready = await Ok(await r.GetAsync("/ready"));
            Assert.Equal(2, (int)ready["bank"]!["references"]!);
            Assert.Equal(0, (int)ready["bank"]!["refresh_errors"]!);

            // And a delete by the writer.
            Assert.True((bool)(await Ok(await w.DeleteAsync($"/v1/memories/{id}")))["deleted"]!);
            bool gone = false;
            for (int i = 0; i < 200 && !gone; i++)
            {
                gone = (await r.GetAsync($"/v1/memories/{id}")).StatusCode == HttpStatusCode.NotFound;
                if (!gone) await Task.Delay(50);
            }
            Assert.True(gone, "the writer's delete should reach the read-only server");
        }
        finally
        {
            try { Directory.Delete(bank, true); } catch (IOException) { }
        }
    }
}
