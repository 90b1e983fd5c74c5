using Memory3.Engine.Telemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Memory3.Server.Hosting;

public static class TelemetryHosting
{
    /// <summary>
    /// Traces (ASP.NET Core + the engine's <c>queue</c>/<c>prefill</c>/<c>decode</c>/<c>engine.step</c> spans) and metrics
    /// (ASP.NET Core + <c>memory3.*</c>), scraped at /metrics; exported by OTLP when Memory3:Telemetry:OtlpEndpoint is set.
    /// </summary>
    public static IHostApplicationBuilder AddTelemetry(this IHostApplicationBuilder builder)
    {
        var t = builder.Configuration.GetSection($"{Memory3Options.Section}:Telemetry").Get<TelemetrySettings>() ?? new TelemetrySettings();
        bool otlp = !string.IsNullOrWhiteSpace(t.OtlpEndpoint) && Uri.TryCreate(t.OtlpEndpoint, UriKind.Absolute, out _);
        void Otlp(OtlpExporterOptions o)
        {
            o.Endpoint = new Uri(t.OtlpEndpoint!);
            o.Protocol = t.OtlpProtocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        }
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(t.ServiceName, serviceVersion: typeof(TelemetryHosting).Assembly.GetName().Version?.ToString()))
            .WithTracing(tracing =>
            {
                tracing.AddAspNetCoreInstrumentation(o => o.Filter = ctx => ctx.Request.Path != "/metrics" && ctx.Request.Path != "/health")
                    .AddSource(EngineTelemetry.Name);
                if (otlp) tracing.AddOtlpExporter(Otlp);
            })
            .WithMetrics(metrics =>
            {
                metrics.AddAspNetCoreInstrumentation().AddMeter(EngineTelemetry.Name).AddPrometheusExporter();
                if (otlp) metrics.AddOtlpExporter(Otlp);
            });
        return builder;
    }
}
