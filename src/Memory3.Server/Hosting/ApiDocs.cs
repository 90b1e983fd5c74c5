using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Memory3.Server.Hosting;

/// <summary>An example request body and/or 200 response for an endpoint's Swagger page.</summary>
public sealed record ApiExample(string? Request, string? Response);

public static class ApiDocs
{
    public static RouteHandlerBuilder WithExample(this RouteHandlerBuilder b, string? request, string? response) =>
        b.WithMetadata(new ApiExample(request, response));

    public static IServiceCollection AddApiDocs(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(c =>
        {
            c.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "Memory3",
                Version = "v1",
                Description = "OpenAI-compatible inference with explicit memory. Send `Authorization: Bearer <key>` when keys are configured.",
            });
            c.AddSecurityDefinition("bearer", new OpenApiSecurityScheme { Type = SecuritySchemeType.Http, Scheme = "bearer", Description = "An API key from Memory3:ApiKeys" });
            c.AddSecurityRequirement(doc => new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", doc)] = [] });
            c.OperationFilter<ExampleFilter>();
            c.CustomSchemaIds(t => t.FullName!.Replace("Memory3.Server.Api.", "").Replace("+", "."));
            var xml = Path.Combine(AppContext.BaseDirectory, "Memory3.Server.xml");
            if (File.Exists(xml)) c.IncludeXmlComments(xml);
        });
        return services;
    }

    public static WebApplication UseApiDocs(this WebApplication app)
    {
        app.UseSwagger();
        app.UseSwaggerUI(c =>
        {
            c.SwaggerEndpoint("/swagger/v1/swagger.json", "Memory3 v1");
            c.RoutePrefix = "swagger";
        });
        return app;
    }

    private sealed class ExampleFilter : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            var ex = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<ApiExample>().LastOrDefault();
            if (ex is null) return;
            if (ex.Request is not null && operation.RequestBody?.Content is { } rc)
                foreach (var media in rc.Values) if (media is OpenApiMediaType m) m.Example = JsonNode.Parse(ex.Request);
            if (ex.Response is not null && operation.Responses is { } rs && rs.TryGetValue("200", out var ok) && ok.Content is { } oc)
                foreach (var (type, media) in oc)
                    if (type.Contains("json", StringComparison.Ordinal) && media is OpenApiMediaType m) m.Example = JsonNode.Parse(ex.Response);
        }
    }
}
