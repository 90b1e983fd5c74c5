using Memory3.Server.Api.OpenAi;
using Memory3.Server.Hosting;

var builder = WebApplication.CreateBuilder(args);

// The product keeps appsettings.json at the repository root; it sits beneath every other configuration source.
builder.Configuration.AddRepositorySettings(builder.Environment);

builder.AddTelemetry();
builder.AddEngine();
builder.AddOpenAiApi();

var app = builder.Build();

app.MapOpenAiApi();

app.Run();

/// <summary>The entry point, visible to WebApplicationFactory.</summary>
public partial class Program;
