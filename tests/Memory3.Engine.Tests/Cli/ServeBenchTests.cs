using System.Text;
using Memory3.Cli.Commands;

namespace Memory3.Engine.Tests.Cli;

/// <summary>`bench serve`'s SSE reading, timing and percentile code, on canned streams with a fake clock (no server).</summary>
public class ServeBenchTests
{
    private static Stream Body(string s) => new MemoryStream(Encoding.UTF8.GetBytes(s));

    [Fact]
    public void ParseLineReadsTextUsageErrorsAndDone()
    {
        var c = ServeBench.ParseLine("data: {\"choices\":[{\"index\":0,\"text\":\"ab\"}]}");
        Assert.Equal(ServeBench.SseKind.Chunk, c.Kind);
        Assert.Equal("ab", c.Text);
        var chat = ServeBench.ParseLine("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}");
        Assert.Equal("hi", chat.Text);
        var u = ServeBench.ParseLine("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":128,\"completion_tokens\":7,\"total_tokens\":135}}");
        Assert.Equal(("", 7, 128), (u.Text, u.CompletionTokens, u.PromptTokens));
        Assert.Equal(ServeBench.SseKind.Done, ServeBench.ParseLine("data: [DONE]").Kind);
        Assert.Equal(ServeBench.SseKind.Ignore, ServeBench.ParseLine("").Kind);
        Assert.Equal(ServeBench.SseKind.Ignore, ServeBench.ParseLine(": keep-alive").Kind);
        var e = ServeBench.ParseLine("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}");
        Assert.Equal((ServeBench.SseKind.Error, "boom"), (e.Kind, e.Error));
        Assert.Equal(ServeBench.SseKind.Error, ServeBench.ParseLine("data: {not json").Kind);
    }

    [Fact]
    public async Task ReadStreamTimesFirstTextAndGapsPerToken()
    {
        // Clock ticks 10 ms per read; the first chunk has no text (role/empty), so TTFT is the second chunk's time.
        var sse = "data: {\"choices\":[{\"index\":0,\"text\":\"\"}]}\n\n" +
                  "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n" +
                  "data: {\"choices\":[{\"index\":0,\"text\":\"b\"}]}\n\n" +
                  "data: {\"choices\":[{\"index\":0,\"text\":\"c\",\"finish_reason\":\"length\"}]}\n\n" +
                  "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":16,\"completion_tokens\":5,\"total_tokens\":21}}\n\n" +
                  "data: [DONE]\n\n";
        double t = 0;
        var r = await ServeBench.ReadStreamAsync(Body(sse), () => t += 10, CancellationToken.None);
        Assert.Null(r.Error);
        Assert.Equal(10, r.TtftMs);            // first clock read is the first text chunk
        Assert.Equal(5, r.CompletionTokens);    // usage wins over the 3 text chunks
        Assert.Equal(16, r.PromptTokens);
        // 3 text chunks carry 5 tokens: 2 gaps for 4 later tokens → each 10 ms gap is 2 tokens, 5 ms per token.
        Assert.Equal(new[] { 5.0, 5.0 }, r.ItlMs);
        Assert.Equal(40, r.E2eMs);
    }

    [Fact]
    public async Task ReadStreamWithoutDoneOrWithErrorEventIsAnError()
    {
        var cut = await ServeBench.ReadStreamAsync(Body("data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n"), () => 1, CancellationToken.None);
        Assert.NotNull(cut.Error);
        var failed = await ServeBench.ReadStreamAsync(Body("data: {\"error\":{\"message\":\"engine stopped\"}}\n\ndata: [DONE]\n\n"), () => 1, CancellationToken.None);
        Assert.Equal("engine stopped", failed.Error);
    }

    [Fact]
    public void PercentilesInterpolateLikeNumpy()
    {
        var v = new double[] { 4, 1, 3, 2, 5 };
        Assert.Equal(3, ServeBench.Percentile(v, 50));
        Assert.Equal(4.96, ServeBench.Percentile(v, 99), 9);
        Assert.Equal(1, ServeBench.Percentile(v, 0));
        Assert.Equal(7, ServeBench.Percentile(new double[] { 7 }, 99));
        Assert.True(double.IsNaN(ServeBench.Percentile(Array.Empty<double>(), 50)));
        Assert.Equal(2.5, ServeBench.Percentile(new double[] { 1, 2, 3, 4 }, 50));
    }

    [Fact]
    public void AggregateCountsTokensOverWallTimeAndRatiosToLevelOne()
    {
        var ok = new ServeBench.RequestResult(100, 1000, new[] { 10.0, 20.0 }, 128, 128, null);
        var bad = new ServeBench.RequestResult(null, 5, Array.Empty<double>(), 0, null, "503: busy");
        var one = ServeBench.Aggregate(1, new[] { ok, ok }, 2.0);
        Assert.Equal(128.0, one.OutputTokensPerSecond);
        Assert.Equal(0, one.Errors);
        var eight = ServeBench.Aggregate(8, new[] { ok, ok, ok, ok, bad }, 0.5);
        Assert.Equal(1, eight.Errors);
        Assert.Equal("503: busy", eight.FirstError);
        Assert.Equal(1024.0, eight.OutputTokensPerSecond);
        Assert.Equal(100, eight.TtftP50Ms);
        Assert.Equal(15, eight.ItlP50Ms);
        Assert.Equal(new double?[] { 1.0, 8.0 }, ServeBench.RatiosToLevelOne(new[] { one, eight }));
    }

    [Fact]
    public void RequestBodyIsAStreamingGreedyTokenIdCompletion()
    {
        var b = ServeBench.RequestBody(new ServeBench.RequestOptions(new[] { 1, 2, 3 }, 16, "m", TimeSpan.FromSeconds(1)));
        Assert.Equal("{\"prompt\":[1,2,3],\"max_tokens\":16,\"temperature\":0,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true},\"model\":\"m\"}", b.ToJsonString());
        Assert.Equal("http://h:8000/", ServeBench.NormalizeBaseUrl("http://h:8000/v1/").ToString());
        Assert.Throws<ArgumentException>(() => ServeBench.NormalizeBaseUrl("ftp://x"));
    }
}
