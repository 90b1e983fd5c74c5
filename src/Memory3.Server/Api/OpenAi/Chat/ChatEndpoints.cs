using Memory3.Engine.Inference;
using Memory3.Server.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Api.OpenAi.Chat;

public static class ChatEndpoints
{
    public static RouteGroupBuilder MapChat(this RouteGroupBuilder v1)
    {
        v1.MapPost("/chat/completions", CreateAsync)
            .WithName("CreateChatCompletion")
            .WithSummary("Creates a chat completion (OpenAI), streamed as server-sent events when stream is true")
            .WithTags("OpenAI")
            .Accepts<ChatCompletionRequest>("application/json")
            .Produces(StatusCodes.Status200OK, typeof(ChatCompletionChunk), "text/event-stream")
            .ProducesOpenAiErrors()
            .WithExample(ApiExamples.ChatRequest, ApiExamples.ChatResponse);
        return v1;
    }

    public static async Task<Results<Ok<ChatCompletionResponse>, EmptyHttpResult>> CreateAsync(
        HttpContext http, ModelHost host, IInferenceEngine engine, IOptions<Memory3Options> options)
    {
        var body = await OpenAiJson.ReadBodyAsync<ChatCompletionRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
        var req = ChatMapping.ToEngineRequest(body, host) with { Memory = Memory.MemoryMapping.ToEngine(body.Memory, host, http) };
        var events = engine.GenerateAsync(req, http.RequestAborted);
        if (body.Stream == true)
        {
            try { await ChatMapping.StreamAsync(http, events, req, body.StreamOptions?.IncludeUsage == true, host); }
            catch (Exception e) when (http.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException) { /* client gone: the engine aborted the request */ }
            return TypedResults.Empty;
        }
        return TypedResults.Ok(await ChatMapping.CollectAsync(events, req, host, http.RequestAborted));
    }
}
