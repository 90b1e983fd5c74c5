using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.Features;

namespace Memory3.Server.Api.OpenAi;

/// <summary>JSON as the OpenAI API speaks it: snake_case, nulls omitted unless a field says otherwise, unknown fields ignored.</summary>
public static class OpenAiJson
{
    public static JsonSerializerOptions Options { get; } = Apply(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Apply(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        o.DictionaryKeyPolicy = null;
        o.PropertyNameCaseInsensitive = false;
        o.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        o.NumberHandling = JsonNumberHandling.Strict;
        o.UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip;
        o.MaxDepth = 32;
        o.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        return o;
    }

    /// <summary>
    /// Reads a JSON body. Malformed JSON, a wrong type, invalid UTF-8 or nesting deeper than 32 is a 400 naming the
    /// field; a body over <paramref name="maxBytes"/> is a 413. Never a 500.
    /// </summary>
    public static async Task<T> ReadBodyAsync<T>(HttpRequest request, long maxBytes) where T : class
    {
        if (request.ContentLength > maxBytes) throw TooLarge(maxBytes);
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } f) f.MaxRequestBodySize = maxBytes;
        try
        {
            using var limited = new LimitedStream(request.Body, maxBytes);
            var value = await JsonSerializer.DeserializeAsync<T>(limited, Options, request.HttpContext.RequestAborted);
            return value ?? throw ApiException.BadRequest("the request body must be a JSON object");
        }
        catch (JsonException e)
        {
            var param = ParamFromPath(e.Path);
            bool syntax = e.InnerException?.GetType().Name == "JsonReaderException" || e.Message.Contains("invalid start of", StringComparison.Ordinal);
            var what = syntax || param is null ? "the request body is not valid JSON" : $"invalid value for '{param}' (wrong JSON type)";
            var where = e.LineNumber is long line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
            throw ApiException.BadRequest($"{what}{where}", syntax ? null : param);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(maxBytes);
        }
        catch (InvalidOperationException e) when (e.InnerException is System.Text.DecoderFallbackException)
        {
            throw ApiException.BadRequest("the request body is not valid UTF-8");
        }
        catch (BodyTooLargeException)
        {
            throw TooLarge(maxBytes);
        }
    }

    private static ApiException TooLarge(long max) => new(413, $"the request body exceeds {max} bytes", null, "invalid_request_error", "request_too_large");

    /// <summary><c>$.messages[0].role</c> → <c>messages[0].role</c>; <c>$</c> → null.</summary>
    public static string? ParamFromPath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$") return null;
        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
    }

    private sealed class BodyTooLargeException : IOException;

    /// <summary>Counts bytes read and stops past the limit (bodies without Content-Length).</summary>
    private sealed class LimitedStream(Stream inner, long max) : Stream
    {
        private long _read;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => Count(await inner.ReadAsync(buffer, ct));
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        private int Count(int n)
        {
            _read += n;
            if (_read > max) throw new BodyTooLargeException();
            return n;
        }
    }
}

/// <summary>OpenAI's <c>stop</c>: a string or a list of strings.</summary>
public sealed class StringOrListConverter : JsonConverter<List<string>>
{
    public override List<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return null;
        if (reader.TokenType == JsonTokenType.String) return [reader.GetString()!];
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("expected a string or a list of strings");
        var list = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String) throw new JsonException("expected a string or a list of strings");
            list.Add(reader.GetString()!);
        }
        return list;
    }

    public override void Write(Utf8JsonWriter writer, List<string> value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var s in value) writer.WriteStringValue(s);
        writer.WriteEndArray();
    }
}
