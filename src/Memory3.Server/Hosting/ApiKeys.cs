using System.Security.Cryptography;
using System.Text;
using Memory3.Server.Api.OpenAi;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Hosting;

/// <summary>Who is calling: the key's name and the memory namespaces it may use. Stored as a request feature.</summary>
public sealed record ApiPrincipal(string? KeyName, IReadOnlyList<string> Namespaces, bool Anonymous);

/// <summary>The configured Bearer keys. With none the server is open.</summary>
public sealed class ApiKeyStore
{
    private readonly (byte[] Key, ApiPrincipal Principal)[] _keys;
    private static readonly ApiPrincipal Open = new(null, ["default"], Anonymous: true);

    public ApiKeyStore(IOptions<Memory3Options> options)
    {
        _keys = options.Value.ApiKeys
            .Select((k, i) => (Encoding.UTF8.GetBytes(k.Key), new ApiPrincipal(k.Name ?? $"key{i}", k.Namespaces.Count == 0 ? ["default"] : k.Namespaces.ToArray(), false)))
            .ToArray();
    }

    public bool IsOpen => _keys.Length == 0;
    public int Count => _keys.Length;

    /// <summary>The principal for an Authorization header value, or null when it is missing or wrong.</summary>
    public ApiPrincipal? Authenticate(string? authorization)
    {
        if (IsOpen) return Open;
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return null;
        var given = Encoding.UTF8.GetBytes(authorization.AsSpan(7).Trim().ToString());
        ApiPrincipal? found = null;
        foreach (var (key, principal) in _keys)
            if (CryptographicOperations.FixedTimeEquals(key, given)) found = principal;
        return found;
    }
}

/// <summary>Bearer authentication for API groups: 401 (OpenAI envelope or ProblemDetails) for a missing or wrong key.</summary>
public sealed class ApiKeyFilter(ApiKeyStore keys, bool openAiErrors) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var principal = keys.Authenticate(http.Request.Headers.Authorization.ToString() is { Length: > 0 } h ? h : null);
        if (principal is null)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            const string message = "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a configured key.";
            return openAiErrors
                ? OpenAiErrors.Result(StatusCodes.Status401Unauthorized, message, null, "invalid_request_error", "invalid_api_key")
                : TypedResults.Problem(message, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized");
        }
        http.Features.Set(principal);
        return await next(context);
    }
}
