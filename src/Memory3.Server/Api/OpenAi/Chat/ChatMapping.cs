using System.Text;
using System.Text.Json;
using Memory3.Engine.Inference;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.OpenAi.Chat;

/// <summary>Chat DTOs ↔ engine: messages to prompt tokens, events to the response or chunks.</summary>
public static class ChatMapping
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    public static EngineRequest ToEngineRequest(ChatCompletionRequest r, ModelHost host)
    {
        SamplingMapping.CheckModel(r.Model, host);
        var prompt = EncodePrompt(r.Messages, addGenerationPrompt: true, host);
        if (r.TopLogprobs is not null && r.Logprobs != true)
            throw ApiException.BadRequest("top_logprobs requires logprobs to be true", "top_logprobs");
        int? logprobs = r.Logprobs == true ? r.TopLogprobs ?? 0 : null;
        var (maxTokens, maxParam) = r.MaxCompletionTokens is int mct ? (mct, "max_completion_tokens") : (r.MaxTokens, "max_tokens");
        return SamplingMapping.ToEngineRequest(r, prompt, "messages", maxTokens, maxParam, null, logprobs, "top_logprobs", host);
    }

    /// <summary>Checks the messages, renders the chat template and tokenizes (no BOS added: templates carry their own).</summary>
    public static int[] EncodePrompt(List<ChatMessage>? messages, bool addGenerationPrompt, ModelHost host)
    {
        if (messages is null || messages.Count == 0) throw ApiException.BadRequest("messages must be a non-empty list", "messages");
        var list = new List<(string Role, string Content)>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw ApiException.BadRequest($"messages[{i}] must be an object", $"messages[{i}]");
            if (m.Role is null || !Roles.Contains(m.Role))
                throw ApiException.BadRequest($"messages[{i}].role must be one of system, developer, user, assistant, tool; got '{m.Role}'", $"messages[{i}].role");
            list.Add((m.Role == "developer" ? "system" : m.Role, ContentText(m.Content, i)));
        }
        var formatter = host.ChatFormatter
            ?? throw ApiException.BadRequest($"the model '{host.Id}' has no chat template (tokenizer_config.json chat_template); use /v1/completions", "messages", "chat_template_missing");
        var text = formatter.Format(list, addGenerationPrompt);
        return host.Tokenizer.Encode(text, addSpecialTokens: false);
    }

    private static string ContentText(JsonElement? content, int i)
    {
        if (content is not { } c || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"messages[{i}].content must be a string or a list of content parts", $"messages[{i}].content");
        var sb = new StringBuilder();
        int j = 0;
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"messages[{i}].content[{j}] must be an object with a type", $"messages[{i}].content[{j}]");
            if (type.GetString() != "text")
                throw ApiException.BadRequest($"messages[{i}].content[{j}]: content type '{type.GetString()}' is not supported (text only)", $"messages[{i}].content[{j}].type");
            if (!part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"messages[{i}].content[{j}].text must be a string", $"messages[{i}].content[{j}].text");
            sb.Append(t.GetString());
            j++;
        }
        return sb.ToString();
    }

    public static ChatTokenLogprob Logprob(TokenEvent e, ModelHost host)
    {
        var top = new List<ChatTopLogprob>(e.TopLogprobs?.Length ?? 0);
        if (e.TopLogprobs is { } alts)
            foreach (var a in alts) top.Add(new ChatTopLogprob(host.TokenText(a.TokenId), a.Logprob, Bytes(host, a.TokenId)));
        return new ChatTokenLogprob(host.TokenText(e.TokenId), e.Logprob, Bytes(host, e.TokenId), top);
    }

    private static List<int> Bytes(ModelHost host, int id)
    {
        var b = host.Tokenizer.TokenBytes(id);
        var l = new List<int>(b.Length);
        foreach (var x in b) l.Add(x);
        return l;
    }

    /// <summary>Collects every choice's events into the response. A failed step is a 500.</summary>
    public static async Task<ChatCompletionResponse> CollectAsync(IAsyncEnumerable<TokenEvent> events, EngineRequest req, ModelHost host, CancellationToken ct)
    {
        int n = req.N;
        var texts = new StringBuilder[n];
        var finish = new string?[n];
        var lps = new List<ChatTokenLogprob>?[n];
        int completion = 0;
        var memory = new Memory.MemoryMapping.Collector();
        for (int i = 0; i < n; i++) { texts[i] = new StringBuilder(); if (req.Sampling.Logprobs is not null) lps[i] = []; }
        await foreach (var e in events.WithCancellation(ct))
        {
            if (e.IsError) throw SamplingMapping.StepFailure(e.Error!);
            completion++;
            memory.Add(e);
            texts[e.Index].Append(e.Text);
            lps[e.Index]?.Add(Logprob(e, host));
            if (e.Finish is not null) finish[e.Index] = SamplingMapping.FinishReasonText(e.Finish);
        }
        var choices = new List<ChatChoice>(n);
        for (int i = 0; i < n; i++)
            choices.Add(new ChatChoice(i, new ChatResponseMessage("assistant", texts[i].ToString()), lps[i] is { } l ? new ChatLogprobs(l) : null, finish[i] ?? "stop"));
        int p = req.PromptTokens.Length;
        return new ChatCompletionResponse(SamplingMapping.NewId("chatcmpl-"), "chat.completion", SamplingMapping.UnixNow(), host.Id, choices, new Usage(p, completion, p + completion))
        { Memory = memory.Block() };
    }

    /// <summary>Streams chunks: a role delta per choice, content deltas, the finish reason, optionally usage, then [DONE].</summary>
    public static async Task StreamAsync(HttpContext http, IAsyncEnumerable<TokenEvent> events, EngineRequest req, bool includeUsage, ModelHost host)
    {
        var ct = http.RequestAborted;
        var res = http.Response;
        string id = SamplingMapping.NewId("chatcmpl-");
        long created = SamplingMapping.UnixNow();
        int completion = 0;
        var memory = new Memory.MemoryMapping.Collector();
        await Sse.StartAsync(res);
        for (int i = 0; i < req.N; i++)
            await Sse.WriteAsync(res, new ChatCompletionChunk(id, "chat.completion.chunk", created, host.Id, [new ChatChunkChoice(i, new ChatDelta("assistant", ""), null, null)]), ct);
        await foreach (var e in events.WithCancellation(ct))
        {
            if (e.IsError)
            {
                await Sse.ErrorAsync(res, SamplingMapping.StepFailure(e.Error!), ct);
                return;
            }
            completion++;
            memory.Add(e);
            var lp = req.Sampling.Logprobs is not null ? new ChatLogprobs([Logprob(e, host)]) : null;
            if (e.Text.Length == 0 && e.Finish is null && lp is null) continue;
            var finish = e.Finish is null ? null : SamplingMapping.FinishReasonText(e.Finish);
            await Sse.WriteAsync(res, new ChatCompletionChunk(id, "chat.completion.chunk", created, host.Id,
                [new ChatChunkChoice(e.Index, new ChatDelta(Content: e.Text), lp, finish)]), ct);
        }
        if (includeUsage || memory.Any)
        {
            int p = req.PromptTokens.Length;
            await Sse.WriteAsync(res, new ChatCompletionChunk(id, "chat.completion.chunk", created, host.Id, [], includeUsage ? new Usage(p, completion, p + completion) : null)
                { Memory = memory.Block() }, ct);
        }
        await Sse.DoneAsync(res, ct);
    }
}
