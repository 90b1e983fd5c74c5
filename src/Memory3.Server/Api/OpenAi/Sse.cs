using System.Buffers;
using System.Text.Json;

namespace Memory3.Server.Api.OpenAi;

/// <summary>Server-sent events as OpenAI streams them: <c>data: {json}\n\n</c> ... <c>data: [DONE]\n\n</c>.</summary>
public static class Sse
{
    private static readonly byte[] Prefix = "data: "u8.ToArray();
    private static readonly byte[] Suffix = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static async Task StartAsync(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync();
    }

    public static async Task WriteAsync<T>(HttpResponse response, T value, CancellationToken ct)
    {
        var body = response.BodyWriter;
        body.Write(Prefix);
        using (var w = new Utf8JsonWriter(body)) JsonSerializer.Serialize(w, value, OpenAiJson.Options);
        body.Write(Suffix);
        await body.FlushAsync(ct);
    }

    public static async Task DoneAsync(HttpResponse response, CancellationToken ct)
    {
        response.BodyWriter.Write(Done);
        await response.BodyWriter.FlushAsync(ct);
    }

    /// <summary>An error after the stream started: an envelope as an event (vLLM does the same), then [DONE].</summary>
    public static async Task ErrorAsync(HttpResponse response, ApiException e, CancellationToken ct)
    {
        await WriteAsync(response, new OpenAiErrorResponse(new OpenAiError(e.Message, e.Type, e.Param, e.Code)), ct);
        await DoneAsync(response, ct);
    }
}
