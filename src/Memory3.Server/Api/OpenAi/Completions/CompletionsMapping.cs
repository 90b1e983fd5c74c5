using System.Text;
using System.Text.Json;
using Memory3.Engine.Inference;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.OpenAi.Completions;

public static class CompletionsMapping
{
    /// <summary>OpenAI's default for /v1/completions.</summary>
    public const int DefaultMaxTokens = 16;

    public static EngineRequest ToEngineRequest(CompletionRequest r, ModelHost host, out string promptText)
    {
        SamplingMapping.CheckModel(r.Model, host);
        if (!string.IsNullOrEmpty(r.Suffix)) throw ApiException.BadRequest("suffix is not supported", "suffix");
        var prompt = EncodePrompt(r.Prompt, host, out promptText);
        return SamplingMapping.ToEngineRequest(r, prompt, "prompt", r.MaxTokens, "max_tokens", DefaultMaxTokens, r.Logprobs, "logprobs", host);
    }

    public static int[] EncodePrompt(JsonElement? prompt, ModelHost host, out string text)
    {
        if (prompt is not { } p || p.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest("prompt is required", "prompt");
        if (p.ValueKind == JsonValueKind.String)
        {
            text = p.GetString()!;
            return host.Tokenizer.Encode(text, addSpecialTokens: true);
        }
        if (p.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest("prompt must be a string, a list of token ids, or a list with one of those", "prompt");
        int count = p.GetArrayLength();
        if (count == 0) throw ApiException.BadRequest("prompt must not be empty", "prompt");
        var first = p[0];
        if (first.ValueKind is JsonValueKind.String or JsonValueKind.Array)
        {
            if (count > 1) throw ApiException.BadRequest("batched prompts are not supported: send one request per prompt", "prompt");
            return EncodePrompt(first, host, out text);
        }
        var ids = new int[count];
        int i = 0;
        foreach (var e in p.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i]))
                throw ApiException.BadRequest($"prompt[{i}] must be a token id", "prompt");
            if ((uint)ids[i] >= (uint)host.Config.VocabSize)
                throw ApiException.BadRequest($"prompt[{i}]: token id {ids[i]} is outside the vocabulary [0, {host.Config.VocabSize})", "prompt");
            i++;
        }
        text = host.Tokenizer.Decode(ids, skipSpecialTokens: false);
        return ids;
    }

    private sealed class LogprobsBuilder(ModelHost host, int textOffset)
    {
        public readonly CompletionLogprobs Value = new([], [], [], []);
        private int _offset = textOffset;

        public void Add(TokenEvent e, int textLengthBefore)
        {
            Value.Tokens.Add(host.TokenText(e.TokenId));
            Value.TokenLogprobs.Add(e.Logprob);
            var top = new Dictionary<string, float>();
            if (e.TopLogprobs is { } alts) foreach (var a in alts) top.TryAdd(host.TokenText(a.TokenId), a.Logprob);
            Value.TopLogprobs.Add(top);
            Value.TextOffset.Add(_offset + textLengthBefore);
        }
    }

    public static async Task<CompletionResponse> CollectAsync(IAsyncEnumerable<TokenEvent> events, EngineRequest req, bool echo, string promptText, ModelHost host, CancellationToken ct)
    {
        int n = req.N;
        var texts = new StringBuilder[n];
        var finish = new string?[n];
        var lps = new LogprobsBuilder?[n];
        int completion = 0;
        string prefix = echo ? promptText : "";
        var memory = new Memory.MemoryMapping.Collector();
        for (int i = 0; i < n; i++) { texts[i] = new StringBuilder(prefix); if (req.Sampling.Logprobs is not null) lps[i] = new LogprobsBuilder(host, 0); }
        await foreach (var e in events.WithCancellation(ct))
        {
            if (e.IsError) throw SamplingMapping.StepFailure(e.Error!);
            completion++;
            memory.Add(e);
            lps[e.Index]?.Add(e, texts[e.Index].Length);
            texts[e.Index].Append(e.Text);
            if (e.Finish is not null) finish[e.Index] = SamplingMapping.FinishReasonText(e.Finish);
        }
        var choices = new List<CompletionChoice>(n);
        for (int i = 0; i < n; i++) choices.Add(new CompletionChoice(i, texts[i].ToString(), lps[i]?.Value, finish[i] ?? "stop"));
        int p = req.PromptTokens.Length;
        return new CompletionResponse(SamplingMapping.NewId("cmpl-"), "text_completion", SamplingMapping.UnixNow(), host.Id, choices, new Usage(p, completion, p + completion))
        { Memory = memory.Block() };
    }

    public static async Task StreamAsync(HttpContext http, IAsyncEnumerable<TokenEvent> events, EngineRequest req, bool echo, string promptText, bool includeUsage, ModelHost host)
    {
        var ct = http.RequestAborted;
        var res = http.Response;
        string id = SamplingMapping.NewId("cmpl-");
        long created = SamplingMapping.UnixNow();
        int completion = 0;
        var offsets = new int[req.N];
        var memory = new Memory.MemoryMapping.Collector();
        await Sse.StartAsync(res);
        if (echo)
            for (int i = 0; i < req.N; i++)
            {
                offsets[i] = promptText.Length;
                await Sse.WriteAsync(res, new CompletionResponse(id, "text_completion", created, host.Id, [new CompletionChoice(i, promptText, null, null)], null), ct);
            }
        await foreach (var e in events.WithCancellation(ct))
        {
            if (e.IsError)
            {
                await Sse.ErrorAsync(res, SamplingMapping.StepFailure(e.Error!), ct);
                return;
            }
            completion++;
            memory.Add(e);
            CompletionLogprobs? lp = null;
            if (req.Sampling.Logprobs is not null)
            {
                var b = new LogprobsBuilder(host, offsets[e.Index]);
                b.Add(e, 0);
                lp = b.Value;
            }
            offsets[e.Index] += e.Text.Length;
            if (e.Text.Length == 0 && e.Finish is null && lp is null) continue;
            var finish = e.Finish is null ? null : SamplingMapping.FinishReasonText(e.Finish);
            await Sse.WriteAsync(res, new CompletionResponse(id, "text_completion", created, host.Id, [new CompletionChoice(e.Index, e.Text, lp, finish)], null), ct);
        }
        if (includeUsage || memory.Any)
        {
            int p = req.PromptTokens.Length;
            await Sse.WriteAsync(res, new CompletionResponse(id, "text_completion", created, host.Id, [], includeUsage ? new Usage(p, completion, p + completion) : null)
                { Memory = memory.Block() }, ct);
        }
        await Sse.DoneAsync(res, ct);
    }
}
