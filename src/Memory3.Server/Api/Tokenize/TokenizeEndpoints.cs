using Memory3.Server.Api.OpenAi;
using Memory3.Server.Api.OpenAi.Chat;
using Memory3.Server.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Api.Tokenize;

/// <summary>vLLM's tokenizer endpoints. Errors are ProblemDetails (not under /v1).</summary>
public static class TokenizeEndpoints
{
    public static IEndpointRouteBuilder MapTokenize(this IEndpointRouteBuilder app, ApiKeyStore keys)
    {
        var g = app.MapGroup("").WithTags("Tokenizer").AddEndpointFilter(new ApiKeyFilter(keys, openAiErrors: false));
        g.MapPost("/tokenize", TokenizeAsync)
            .WithName("Tokenize").WithSummary("Tokenizes a prompt, or chat messages through the chat template (vLLM)")
            .Accepts<TokenizeRequest>("application/json").ProducesProblem(400).ProducesProblem(401).ProducesProblem(404)
            .WithExample(ApiExamples.TokenizeRequest, ApiExamples.TokenizeResponse);
        g.MapPost("/detokenize", DetokenizeAsync)
            .WithName("Detokenize").WithSummary("Turns token ids back into text (vLLM)")
            .Accepts<DetokenizeRequest>("application/json").ProducesProblem(400).ProducesProblem(401).ProducesProblem(404)
            .WithExample(ApiExamples.DetokenizeRequest, ApiExamples.DetokenizeResponse);
        return app;
    }

    public static async Task<Results<Ok<TokenizeResponse>, ProblemHttpResult>> TokenizeAsync(HttpContext http, ModelHost host, IOptions<Memory3Options> options)
    {
        try
        {
            var r = await OpenAiJson.ReadBodyAsync<TokenizeRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
            SamplingMapping.CheckModel(r.Model, host);
            int[] ids;
            if (r.Messages is not null)
            {
                if (r.Prompt is not null) throw ApiException.BadRequest("give either prompt or messages, not both", "prompt");
                ids = ChatMapping.EncodePrompt(r.Messages, r.AddGenerationPrompt ?? true, host);
                if (r.AddSpecialTokens == true && host.Tokenizer.AddBosToken && host.Tokenizer.BosTokenId is int bos) ids = [bos, .. ids];
            }
            else if (r.Prompt is not null) ids = host.Tokenizer.Encode(r.Prompt, r.AddSpecialTokens ?? true);
            else throw ApiException.BadRequest("prompt or messages is required", "prompt");
            var strs = r.ReturnTokenStrs == true ? ids.Select(i => host.Tokenizer.IdToToken(i) ?? "").ToList() : null;
            return TypedResults.Ok(new TokenizeResponse(ids.Length, host.MaxModelLen, [.. ids], strs));
        }
        catch (Exception e) when (OpenAiErrors.Classify(e) is { } a) { return Problem(a); }
    }

    public static async Task<Results<Ok<DetokenizeResponse>, ProblemHttpResult>> DetokenizeAsync(HttpContext http, ModelHost host, IOptions<Memory3Options> options)
    {
        try
        {
            var r = await OpenAiJson.ReadBodyAsync<DetokenizeRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
            SamplingMapping.CheckModel(r.Model, host);
            if (r.Tokens is null) throw ApiException.BadRequest("tokens is required", "tokens");
            foreach (var t in r.Tokens)
                if ((uint)t >= (uint)host.Tokenizer.VocabSize) throw ApiException.BadRequest($"token id {t} is outside the vocabulary [0, {host.Tokenizer.VocabSize})", "tokens");
            return TypedResults.Ok(new DetokenizeResponse(host.Tokenizer.Decode(r.Tokens.ToArray(), skipSpecialTokens: false)));
        }
        catch (Exception e) when (OpenAiErrors.Classify(e) is { } a) { return Problem(a); }
    }

    private static ProblemHttpResult Problem(ApiException a) => TypedResults.Problem(a.Message, statusCode: a.Status,
        title: a.Status == 404 ? "Not Found" : a.Status == 413 ? "Payload Too Large" : "Bad Request",
        extensions: a.Param is null ? null : new Dictionary<string, object?> { ["param"] = a.Param });
}
