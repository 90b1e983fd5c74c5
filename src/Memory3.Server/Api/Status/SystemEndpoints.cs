using System.Reflection;
using Memory3.Engine.Inference;
using Memory3.Server.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Memory3.Server.Api.Status;

public sealed record HealthResponse(string Status);
public sealed record ReadyResponse(string Status, string Model, EngineStats Engine)
{
    /// <summary>The memory bank's statistics, when one is configured (ready means it is open).</summary>
    public Memory3.Engine.Memory.BankStats? Bank { get; init; }
}
public sealed record VersionResponse(string Version, string Model, string Runtime);

/// <summary>Liveness, readiness, version. Errors are ProblemDetails.</summary>
public static class SystemEndpoints
{
    public static IEndpointRouteBuilder MapSystem(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("").WithTags("System");
        g.MapGet("/health", Health).WithName("Health").WithSummary("Liveness: 200 while the process serves HTTP")
            .WithExample(null, """{"status":"ok"}""");
        g.MapGet("/ready", Ready).WithName("Ready").WithSummary("Readiness: 200 once the model is loaded (and the memory bank open), 503 while loading or after a load failure")
            .ProducesProblem(503).WithExample(null, """{"status":"ready","model":"tiny-random","engine":{"running":0,"waiting":0,"free_slots":16,"total_slots":16,"steps":0,"failed_steps":0,"aborted_sequences":0,"finished_sequences":0}}""");
        g.MapGet("/version", Version).WithName("Version").WithSummary("Server version, served model and runtime")
            .WithExample(null, """{"version":"0.1.0","model":"tiny-random","runtime":".NET 10.0.0"}""");
        return app;
    }

    public static Ok<HealthResponse> Health() => TypedResults.Ok(new HealthResponse("ok"));

    public static Results<Ok<ReadyResponse>, ProblemHttpResult> Ready(HttpContext http, ModelHost host, IInferenceEngine engine)
    {
        if (engine.IsReady) return TypedResults.Ok(new ReadyResponse("ready", host.Id, engine.GetStats()) { Bank = host.Bank?.Stats() });
        http.Response.Headers.RetryAfter = engine.Options.RetryAfterSeconds.ToString();
        return TypedResults.Problem(engine.LoadError is { } e ? $"the model failed to load: {e}" : "the model is loading",
            statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready");
    }

    public static Ok<VersionResponse> Version(ModelHost host) => TypedResults.Ok(new VersionResponse(
        typeof(SystemEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0] ?? "0.0.0",
        host.Id, System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription));
}
