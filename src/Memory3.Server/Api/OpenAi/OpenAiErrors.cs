using System.Text.Json.Serialization;
using Memory3.Engine.Inference;
using Memory3.Engine.Model.Sampling;
using Memory3.Engine.Tokenization;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Memory3.Server.Api.OpenAi;

/// <summary>OpenAI's error envelope: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed record OpenAiErrorResponse(OpenAiError Error);

public sealed record OpenAiError(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

/// <summary>A request the API refuses, with its HTTP status and the OpenAI error fields.</summary>
public sealed class ApiException(int status, string message, string? param = null, string type = "invalid_request_error", string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string Type { get; } = type;
    public string? Code { get; } = code;
    public int? RetryAfterSeconds { get; init; }

    public static ApiException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, "invalid_request_error", code);
}

public static class OpenAiErrors
{
    public static JsonHttpResult<OpenAiErrorResponse> Result(int status, string message, string? param, string type, string? code) =>
        TypedResults.Json(new OpenAiErrorResponse(new OpenAiError(message, type, param, code)), OpenAiJson.Options, statusCode: status);

    /// <summary>The envelope for an exception, or null when it is not a request error (let it be a 500).</summary>
    public static ApiException? Classify(Exception e) => e switch
    {
        ApiException a => a,
        SamplingParamException s => ApiException.BadRequest(s.Message, s.ParamName),
        EngineRequestException r => ApiException.BadRequest(r.Message, r.ParamName, r.Code),
        EngineOverloadedException o => new ApiException(429, o.Message, null, "rate_limit_error", "rate_limit_exceeded") { RetryAfterSeconds = o.RetryAfterSeconds },
        EngineNotReadyException n => new ApiException(503, n.Message, null, "service_unavailable", "model_not_ready") { RetryAfterSeconds = n.RetryAfterSeconds },
        InvalidOperationException { InnerException: System.Text.DecoderFallbackException } => ApiException.BadRequest("the request body is not valid UTF-8"),
        ChatFormatException c => ApiException.BadRequest(c.Message, "messages", "chat_template_error"),
        Memory3.Engine.Memory.Store.MemoryBankReadOnlyException ro => Memory.MemoryMapping.ReadOnlyBank(ro.Message),
        _ => null,
    };

    public static IResult ToResult(HttpContext http, ApiException a)
    {
        if (a.RetryAfterSeconds is int s) http.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Result(a.Status, a.Message, a.Param, a.Type, a.Code);
    }
}

/// <summary>Turns request errors thrown by /v1 handlers into the OpenAI envelope (before a stream has started).</summary>
public sealed class OpenAiErrorFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Exception e) when (!context.HttpContext.Response.HasStarted && OpenAiErrors.Classify(e) is { } a)
        {
            return OpenAiErrors.ToResult(context.HttpContext, a);
        }
    }
}
