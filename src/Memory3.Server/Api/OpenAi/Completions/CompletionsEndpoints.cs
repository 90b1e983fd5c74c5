using Memory3.Engine.Inference;
using Memory3.Server.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Api.OpenAi.Completions;

public static class CompletionsEndpoints
{
    public static RouteGroupBuilder MapCompletions(this RouteGroupBuilder v1)
    {
        v1.MapPost("/completions", CreateAsync)
            .WithName("CreateCompletion")
            .WithSummary("Creates a text completion (OpenAI legacy), streamed as server-sent events when stream is true")
            .WithTags("OpenAI")
            .Accepts<CompletionRequest>("application/json")
            .Produces(StatusCodes.Status200OK, typeof(CompletionResponse), "text/event-stream")
            .ProducesOpenAiErrors()
            .WithExample(ApiExamples.CompletionRequest, ApiExamples.CompletionResponse);
        return v1;
    }

    public static async Task<Results<Ok<CompletionResponse>, EmptyHttpResult>> CreateAsync(
        HttpContext http, ModelHost host, IInferenceEngine engine, IOptions<Memory3Options> options)
    {
        var body = await OpenAiJson.ReadBodyAsync<CompletionRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
        var req = CompletionsMapping.ToEngineRequest(body, host, out var promptText) with { Memory = Memory.MemoryMapping.ToEngine(body.Memory, host, http) };
        var events = engine.GenerateAsync(req, http.RequestAborted);
        bool echo = body.Echo == true;
        if (body.Stream == true)
        {
            try { await CompletionsMapping.StreamAsync(http, events, req, echo, promptText, body.StreamOptions?.IncludeUsage == true, host); }
            catch (Exception e) when (http.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException) { /* client gone */ }
            return TypedResults.Empty;
        }
        return TypedResults.Ok(await CompletionsMapping.CollectAsync(events, req, echo, promptText, host, http.RequestAborted));
    }
}
