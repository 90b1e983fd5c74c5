using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

/// <summary>
/// <c>memory3 bench serve</c>: a load generator for a running server. Each concurrency level runs C clients sending
/// streaming <c>/v1/completions</c> requests (a prompt of exactly <c>--prompt-tokens</c> token ids, <c>ignore_eos</c>,
/// greedy, <c>max_tokens</c>) and reports aggregate output tokens/s, TTFT and inter-token latency percentiles, and the
/// ratio of each level's tokens/s to level 1's (the issue's same-run reference: at 32 ≥ 8×).
/// </summary>
public sealed class BenchServeCommand : Command<BenchServeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--url <URL>"), Description("The server, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted)")]
        public string Url { get; init; } = "http://127.0.0.1:8000";
        [CommandOption("--concurrency <LIST>"), Description("Comma list of concurrent clients per level; default 1,8,32")]
        public string Concurrency { get; init; } = "1,8,32";
        [CommandOption("--prompt-tokens <N>")] public int PromptTokens { get; init; } = 128;
        [CommandOption("--max-tokens <N>")] public int MaxTokens { get; init; } = 128;
        [CommandOption("--requests-per-level <N>"), Description("Requests per level (default 2 × concurrency)")]
        public int? RequestsPerLevel { get; init; }
        [CommandOption("--model <NAME>"), Description("The model id sent in requests (default: none, the server's)")]
        public string? Model { get; init; }
        [CommandOption("--api-key <KEY>"), Description("Sent as Authorization: Bearer KEY")]
        public string? ApiKey { get; init; }
        [CommandOption("--timeout <SECONDS>"), Description("Per-request timeout; default 600")]
        public int TimeoutSeconds { get; init; } = 600;
        [CommandOption("--json <FILE>"), Description("Also write the results as JSON")]
        public string? Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var levels = s.Concurrency.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(b => int.TryParse(b, out var v) && v is > 0 and <= 4096 ? v : throw new ArgumentException($"--concurrency '{b}' is not an integer in 1..4096")).ToArray();
        if (levels.Length == 0) throw new ArgumentException("--concurrency needs at least one level");
        if (s.PromptTokens < 1) throw new ArgumentException("--prompt-tokens must be at least 1");
        if (s.MaxTokens < 1) throw new ArgumentException("--max-tokens must be at least 1");
        if (s.RequestsPerLevel is < 1 or > 100_000) throw new ArgumentException("--requests-per-level must be in 1..100000");
        if (s.TimeoutSeconds < 1) throw new ArgumentException("--timeout must be at least 1 second");
        var baseUri = ServeBench.NormalizeBaseUrl(s.Url);

        using var http = ServeBench.CreateClient(baseUri, levels.Max(), s.ApiKey);
        var prompt = ServeBench.BuildPromptAsync(http, s.PromptTokens, cancellationToken).GetAwaiter().GetResult();
        var options = new ServeBench.RequestOptions(prompt, s.MaxTokens, s.Model, TimeSpan.FromSeconds(s.TimeoutSeconds));

        // One unmeasured request: JIT, first allocation of the KV cache, connection set-up.
        var warm = ServeBench.RunRequestAsync(http, options with { MaxTokens = Math.Min(8, s.MaxTokens) }, cancellationToken).GetAwaiter().GetResult();
        if (warm.Error is not null) throw new ArgumentException($"warm-up request to {baseUri} failed: {warm.Error}");

        var results = new List<ServeBench.LevelResult>();
        foreach (var c in levels)
        {
            int n = s.RequestsPerLevel ?? 2 * c;
            AnsiConsole.MarkupLineInterpolated($"[grey]concurrency {c}: {n} requests...[/]");
            results.Add(ServeBench.RunLevelAsync(http, options, c, n, cancellationToken).GetAwaiter().GetResult());
        }
        var ratios = ServeBench.RatiosToLevelOne(results);

        var t = new Table().AddColumns("conc", "reqs", "err", "tok/s", "÷ c=1", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "E2E p50", "prompt");
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            t.AddRow($"{r.Concurrency}", $"{r.Requests}", $"{r.Errors}", $"{r.OutputTokensPerSecond:F1}", ratios[i] is { } x ? $"{x:F2}×" : "-",
                $"{r.TtftP50Ms:F0}", $"{r.TtftP99Ms:F0}", $"{r.ItlP50Ms:F1}", $"{r.ItlP99Ms:F1}", $"{r.E2eP50Ms:F0}", $"{r.MeanPromptTokens:F0}");
        }
        AnsiConsole.MarkupLineInterpolated($"serve: {baseUri} streaming /v1/completions, {s.PromptTokens} prompt tokens (token ids), {s.MaxTokens} out (ignore_eos, temperature 0); latencies in ms, tok/s = completion tokens ÷ level wall time");
        AnsiConsole.Write(t);
        var one = results.FirstOrDefault(r => r.Concurrency == 1);
        var top = results.FirstOrDefault(r => r.Concurrency == 32);
        if (one is not null && top is not null && one.OutputTokensPerSecond > 0)
        {
            double ratio = top.OutputTokensPerSecond / one.OutputTokensPerSecond;
            AnsiConsole.MarkupLineInterpolated($"reference (same run): tok/s at 32 ÷ tok/s at 1 = {ratio:F2}× (target ≥ 8× on the small preset: {(ratio >= 8 ? "met" : "not met")})");
        }
        else if (one is null)
            AnsiConsole.MarkupLine("reference: no level 1 in --concurrency, ratios are to the first level");
        foreach (var r in results.Where(r => r.Errors > 0))
            AnsiConsole.MarkupLineInterpolated($"[yellow]concurrency {r.Concurrency}: {r.Errors} errors, first: {r.FirstError}[/]");

        BenchSettings.WriteJson(s.Json, new
        {
            command = "bench serve", url = baseUri.ToString(), model = s.Model, prompt_tokens = s.PromptTokens, max_tokens = s.MaxTokens,
            results = results.Select((r, i) => new { r.Concurrency, r.Requests, r.Errors, r.FirstError, r.WallSeconds, r.OutputTokens, r.OutputTokensPerSecond, RatioToLevelOne = ratios[i], r.RequestsPerSecond, r.TtftP50Ms, r.TtftP99Ms, r.ItlP50Ms, r.ItlP99Ms, r.E2eP50Ms, r.E2eP99Ms, r.MeanPromptTokens }),
        });
        return results.Any(r => r.Errors == r.Requests) ? 1 : 0;
    }
}

/// <summary>The pieces of <c>bench serve</c>: SSE parsing, one streamed request's timings, a level, percentiles.</summary>
public static class ServeBench
{
    public sealed record RequestOptions(int[] PromptTokenIds, int MaxTokens, string? Model, TimeSpan Timeout);

    /// <summary>One request: times in ms from the request being sent.</summary>
    public sealed record RequestResult(double? TtftMs, double E2eMs, IReadOnlyList<double> ItlMs, int CompletionTokens, int? PromptTokens, string? Error);

    public sealed record LevelResult(int Concurrency, int Requests, int Errors, string? FirstError, double WallSeconds, long OutputTokens,
        double OutputTokensPerSecond, double RequestsPerSecond, double TtftP50Ms, double TtftP99Ms, double ItlP50Ms, double ItlP99Ms,
        double E2eP50Ms, double E2eP99Ms, double MeanPromptTokens);

    public enum SseKind { Ignore, Done, Chunk, Error }

    /// <summary>One parsed SSE line: the text carried by the chunk's choices, its usage if any, or an error envelope.</summary>
    public readonly record struct SseEvent(SseKind Kind, string Text = "", int? CompletionTokens = null, int? PromptTokens = null, string? Error = null);

    public static SseEvent ParseLine(string line)
    {
        if (!line.StartsWith("data:", StringComparison.Ordinal)) return new SseEvent(SseKind.Ignore);   // comments, event:, blank lines
        var payload = line.AsSpan(5).Trim();
        if (payload.SequenceEqual("[DONE]")) return new SseEvent(SseKind.Done);
        JsonNode? node;
        try { node = JsonNode.Parse(payload.ToString()); }
        catch (JsonException e) { return new SseEvent(SseKind.Error, Error: $"malformed SSE data: {e.Message}"); }
        if (node is not JsonObject o) return new SseEvent(SseKind.Error, Error: "SSE data is not a JSON object");
        if (o["error"] is JsonObject err) return new SseEvent(SseKind.Error, Error: err["message"]?.ToString() ?? err.ToJsonString());
        var text = new StringBuilder();
        if (o["choices"] is JsonArray choices)
            foreach (var c in choices)
                if (c is JsonObject co)
                {
                    if (co["text"] is JsonValue tv && tv.TryGetValue<string>(out var t)) text.Append(t);
                    else if (co["delta"] is JsonObject d && d["content"] is JsonValue dv && dv.TryGetValue<string>(out var dt)) text.Append(dt);
                }
        int? completion = null, prompt = null;
        if (o["usage"] is JsonObject u)
        {
            if (u["completion_tokens"] is JsonValue cv && cv.TryGetValue<int>(out var ct)) completion = ct;
            if (u["prompt_tokens"] is JsonValue pv && pv.TryGetValue<int>(out var pt)) prompt = pt;
        }
        return new SseEvent(SseKind.Chunk, text.ToString(), completion, prompt);
    }

    /// <summary>
    /// Reads an SSE body to <c>[DONE]</c>. <paramref name="nowMs"/> is the clock (ms since the request was sent).
    /// TTFT is the first chunk with text; inter-token latencies are the gaps between successive chunks with text, each
    /// divided by the average tokens per gap when usage reports more tokens than there were text chunks.
    /// </summary>
    public static async Task<RequestResult> ReadStreamAsync(Stream body, Func<double> nowMs, CancellationToken ct)
    {
        using var reader = new StreamReader(body, Encoding.UTF8);
        var contentTimes = new List<double>();
        int? usageCompletion = null, usagePrompt = null;
        string? error = null;
        bool done = false;
        for (int lines = 0; lines < 10_000_000; lines++)
        {
            var line = await reader.ReadLineAsync(ct);
            if (line is null) break;
            var ev = ParseLine(line);
            if (ev.Kind == SseKind.Done) { done = true; break; }
            if (ev.Kind == SseKind.Error) { error ??= ev.Error; continue; }
            if (ev.Kind != SseKind.Chunk) continue;
            if (ev.Text.Length > 0) contentTimes.Add(nowMs());
            usageCompletion = ev.CompletionTokens ?? usageCompletion;
            usagePrompt = ev.PromptTokens ?? usagePrompt;
        }
        double end = nowMs();
        if (!done && error is null) error = "stream ended without data: [DONE]";
        int tokens = usageCompletion ?? contentTimes.Count;
        var itl = new List<double>(Math.Max(0, contentTimes.Count - 1));
        if (contentTimes.Count > 1)
        {
            double tokensPerGap = Math.Max(1.0, (tokens - 1.0) / (contentTimes.Count - 1));
            for (int i = 1; i < contentTimes.Count; i++) itl.Add((contentTimes[i] - contentTimes[i - 1]) / tokensPerGap);
        }
        return new RequestResult(contentTimes.Count > 0 ? contentTimes[0] : null, end, itl, tokens, usagePrompt, error);
    }

    /// <summary>Linear interpolation between closest ranks (numpy's default); NaN for no samples.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        double rank = Math.Clamp(p, 0, 100) / 100.0 * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    public static LevelResult Aggregate(int concurrency, IReadOnlyList<RequestResult> requests, double wallSeconds)
    {
        var ok = requests.Where(r => r.Error is null).ToList();
        long outTokens = ok.Sum(r => (long)r.CompletionTokens);
        var ttft = ok.Where(r => r.TtftMs is not null).Select(r => r.TtftMs!.Value).ToList();
        var itl = ok.SelectMany(r => r.ItlMs).ToList();
        var e2e = ok.Select(r => r.E2eMs).ToList();
        var prompts = ok.Where(r => r.PromptTokens is not null).Select(r => (double)r.PromptTokens!.Value).ToList();
        return new LevelResult(concurrency, requests.Count, requests.Count - ok.Count, requests.FirstOrDefault(r => r.Error is not null)?.Error,
            wallSeconds, outTokens, wallSeconds > 0 ? outTokens / wallSeconds : 0, wallSeconds > 0 ? ok.Count / wallSeconds : 0,
            Percentile(ttft, 50), Percentile(ttft, 99), Percentile(itl, 50), Percentile(itl, 99), Percentile(e2e, 50), Percentile(e2e, 99),
            prompts.Count > 0 ? prompts.Average() : double.NaN);
    }

    /// <summary>Each level's tokens/s over the concurrency-1 level's (the first level's when 1 was not run).</summary>
    public static double?[] RatiosToLevelOne(IReadOnlyList<LevelResult> results)
    {
        var baseline = results.FirstOrDefault(r => r.Concurrency == 1) ?? results.FirstOrDefault();
        return results.Select(r => baseline is { OutputTokensPerSecond: > 0 } ? r.OutputTokensPerSecond / baseline.OutputTokensPerSecond : (double?)null).ToArray();
    }

    public static Uri NormalizeBaseUrl(string url)
    {
        var u = url.Trim().TrimEnd('/');
        if (u.EndsWith("/v1", StringComparison.OrdinalIgnoreCase)) u = u[..^3];
        if (!Uri.TryCreate(u + "/", UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new ArgumentException($"--url '{url}' is not an http(s) URL");
        return uri;
    }

    public static HttpClient CreateClient(Uri baseUri, int maxConcurrency, string? apiKey)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = Math.Max(1, maxConcurrency) + 2,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            AutomaticDecompression = DecompressionMethods.None,
        };
        var http = new HttpClient(handler) { BaseAddress = baseUri, Timeout = Timeout.InfiniteTimeSpan };
        if (!string.IsNullOrEmpty(apiKey)) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", apiKey);
        return http;
    }

    /// <summary>Exactly <paramref name="n"/> token ids from the server's own tokenizer (POST /tokenize on a repeated English text).</summary>
    public static async Task<int[]> BuildPromptAsync(HttpClient http, int n, CancellationToken ct)
    {
        const string sentence = "The quick brown fox jumps over the lazy dog while the memory bank answers questions about history. ";
        var text = new StringBuilder(sentence);
        for (int attempt = 0; attempt < 24; attempt++)
        {
            int[] tokens = await TokenizeAsync(http, text.ToString(), ct);
            if (tokens.Length >= n) return tokens[..n];
            int repeat = Math.Max(1, (int)Math.Ceiling((double)(n - tokens.Length) / Math.Max(1, tokens.Length) * text.Length / sentence.Length));
            for (int i = 0; i < repeat; i++) text.Append(sentence);
        }
        throw new ArgumentException($"could not build a {n}-token prompt through {http.BaseAddress}tokenize");
    }

    private static async Task<int[]> TokenizeAsync(HttpClient http, string text, CancellationToken ct)
    {
        HttpResponseMessage resp;
        try { resp = await http.PostAsync("tokenize", JsonContent(new JsonObject { ["prompt"] = text }), ct); }
        catch (HttpRequestException e) { throw new ArgumentException($"cannot reach {http.BaseAddress}: {e.Message}"); }
        using (resp)
        {
            var body = await resp.Content.ReadAsStringAsync(ct);
            if (!resp.IsSuccessStatusCode) throw new ArgumentException($"POST {http.BaseAddress}tokenize: {(int)resp.StatusCode} {Truncate(body)}");
            var tokens = JsonNode.Parse(body)?["tokens"] as JsonArray ?? throw new ArgumentException($"POST /tokenize returned no tokens: {Truncate(body)}");
            return tokens.Select(t => t!.GetValue<int>()).ToArray();
        }
    }

    public static JsonObject RequestBody(RequestOptions o)
    {
        var body = new JsonObject
        {
            ["prompt"] = new JsonArray(o.PromptTokenIds.Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
            ["max_tokens"] = o.MaxTokens,
            ["temperature"] = 0,
            ["ignore_eos"] = true,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        if (o.Model is not null) body["model"] = o.Model;
        return body;
    }

    public static async Task<RequestResult> RunRequestAsync(HttpClient http, RequestOptions o, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(o.Timeout);
        long start = Stopwatch.GetTimestamp();
        double Now() => Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        try
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = JsonContent(RequestBody(o)) };
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            if (!resp.IsSuccessStatusCode)
                return new RequestResult(null, Now(), [], 0, null, $"{(int)resp.StatusCode}: {Truncate(await resp.Content.ReadAsStringAsync(cts.Token))}");
            await using var stream = await resp.Content.ReadAsStreamAsync(cts.Token);
            return await ReadStreamAsync(stream, Now, cts.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new RequestResult(null, Now(), [], 0, null, $"timed out after {o.Timeout.TotalSeconds:F0} s");
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return new RequestResult(null, Now(), [], 0, null, e.Message);
        }
    }

    /// <summary><paramref name="concurrency"/> clients take requests from a shared count until <paramref name="requests"/> have been sent.</summary>
    public static async Task<LevelResult> RunLevelAsync(HttpClient http, RequestOptions o, int concurrency, int requests, CancellationToken ct)
    {
        var results = new RequestResult[requests];
        int next = -1;
        long start = Stopwatch.GetTimestamp();
        var clients = Enumerable.Range(0, Math.Min(concurrency, requests)).Select(_ => Task.Run(async () =>
        {
            for (int i = Interlocked.Increment(ref next); i < requests; i = Interlocked.Increment(ref next))
                results[i] = await RunRequestAsync(http, o, ct);
        }, ct)).ToArray();
        await Task.WhenAll(clients);
        return Aggregate(concurrency, results, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    private static StringContent JsonContent(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private static string Truncate(string s) => s.Length <= 300 ? s : s[..300] + "...";
}
