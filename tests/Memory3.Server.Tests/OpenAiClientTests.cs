using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Chat;

namespace Memory3.Server.Tests;

#pragma warning disable OPENAI001

/// <summary>The official OpenAI .NET client against the test server.</summary>
public class OpenAiClientTests(ServerFactory factory) : IClassFixture<ServerFactory>
{
    private async Task<ChatClient> ClientAsync(string model = "tiny-random")
    {
        var http = await factory.ReadyClientAsync();
        return new ChatClient(model, new ApiKeyCredential("unused"), new OpenAIClientOptions
        {
            Endpoint = new Uri(http.BaseAddress!, "/v1"),
            Transport = new HttpClientPipelineTransport(http),
        });
    }

    private static ChatCompletionOptions Greedy(int max) => new() { Temperature = 0, MaxOutputTokenCount = max };

    [Fact]
    public async Task ChatWithoutStreaming()
    {
        var client = await ClientAsync();
        ChatCompletion c = await client.CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")], Greedy(8));
        Assert.Equal(ChatMessageRole.Assistant, c.Role);
        Assert.Equal(ChatFinishReason.Length, c.FinishReason);
        Assert.Equal(8, c.Usage.OutputTokenCount);
        Assert.True(c.Usage.InputTokenCount > 3);
        Assert.Equal("tiny-random", c.Model);
    }

    [Fact]
    public async Task ChatStreamingWithUsageEqualsNonStreaming()
    {
        var client = await ClientAsync();
        ChatCompletion whole = await client.CompleteChatAsync([new UserChatMessage("Tell me a story")], Greedy(10));
        var text = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var u in client.CompleteChatStreamingAsync([new UserChatMessage("Tell me a story")], Greedy(10)))
        {
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            usage ??= u.Usage;
            finish ??= u.FinishReason;
        }
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.NotNull(usage);
        Assert.Equal(10, usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, finish);
    }

    [Fact]
    public async Task StopEndsTheChoice()
    {
        var client = await ClientAsync();
        ChatCompletion whole = await client.CompleteChatAsync([new UserChatMessage("abc")], Greedy(24));
        var full = whole.Content[0].Text;
        Assert.True(full.Length > 6, full);
        var stop = full.Substring(3, 2);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        var opts = Greedy(24);
        opts.StopSequences.Add(stop);
        ChatCompletion stopped = await client.CompleteChatAsync([new UserChatMessage("abc")], opts);
        Assert.Equal(full[..at], stopped.Content.Count == 0 ? "" : stopped.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        await factory.WaitIdleAsync();
    }

    [Fact]
    public async Task LogprobsThroughTheClient()
    {
        var client = await ClientAsync();
        var opts = Greedy(3);
        opts.IncludeLogProbabilities = true;
        opts.TopLogProbabilityCount = 2;
        ChatCompletion c = await client.CompleteChatAsync([new UserChatMessage("hi")], opts);
        Assert.Equal(3, c.ContentTokenLogProbabilities.Count);
        Assert.Equal(2, c.ContentTokenLogProbabilities[0].TopLogProbabilities.Count);
    }

    [Fact]
    public async Task ErrorsSurfaceAsClientResultExceptions()
    {
        var client = await ClientAsync();
        var bad = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 7 }));
        Assert.Equal(400, bad.Status);
        Assert.Contains("temperature", bad.Message);
        var unknown = await Assert.ThrowsAsync<ClientResultException>(async () => await (await ClientAsync("gpt-nope")).CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, unknown.Status);
        var tooLong = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 100000 }));
        Assert.Equal(400, tooLong.Status);
    }
}
