using Memory3.Server.Api.OpenAi.Chat;
using Memory3.Server.Api.OpenAi.Completions;
using Memory3.Server.Api.OpenAi.Models;
using Memory3.Server.Api.Status;
using Memory3.Server.Api.Tokenize;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.OpenAi;

public static class OpenAiApi
{
    /// <summary>JSON conventions, Swagger and the API's services.</summary>
    public static IHostApplicationBuilder AddOpenAiApi(this IHostApplicationBuilder builder)
    {
        builder.Services.ConfigureHttpJsonOptions(o => OpenAiJson.Apply(o.SerializerOptions));
        builder.Services.AddProblemDetails();
        builder.Services.AddApiDocs();
        builder.Services.AddSingleton<Memory3.Server.Api.Memory.IngestJobs>();
        builder.Services.AddSingleton<Memory3.Server.Api.Memory.KnowledgeSeeder>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Memory3.Server.Api.Memory.KnowledgeSeeder>());
        return builder;
    }

    /// <summary>/v1 (OpenAI), /tokenize and /detokenize (vLLM), /health, /ready, /version, /metrics and /swagger.</summary>
    public static WebApplication MapOpenAiApi(this WebApplication app)
    {
        var keys = app.Services.GetRequiredService<ApiKeyStore>();
        app.UseApiDocs();
        var v1 = app.MapGroup("/v1")
            .AddEndpointFilter(new ApiKeyFilter(keys, openAiErrors: true))
            .AddEndpointFilter<OpenAiErrorFilter>();
        v1.MapChat();
        v1.MapCompletions();
        v1.MapModels();
        Memory3.Server.Api.Memory.MemoryEndpoints.MapMemories(v1);
        app.MapTokenize(keys);
        app.MapSystem();
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }

    /// <summary>Documents the OpenAI error statuses of an endpoint.</summary>
    public static RouteHandlerBuilder ProducesOpenAiErrors(this RouteHandlerBuilder b) => b
        .Produces<OpenAiErrorResponse>(400).Produces<OpenAiErrorResponse>(401).Produces<OpenAiErrorResponse>(404)
        .Produces<OpenAiErrorResponse>(413).Produces<OpenAiErrorResponse>(429).Produces<OpenAiErrorResponse>(500).Produces<OpenAiErrorResponse>(503);
}
