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
        // An endpoint set in code is used as is; over http/protobuf a bare collector address (http://collector:4318)
        // gets the signal's path appended (/v1/traces, /v1/metrics), as the OTEL_EXPORTER_OTLP_ENDPOINT convention does.
        Action<OtlpExporterOptions> Otlp(string signalPath) => o =>
        {
            var endpoint = new Uri(t.OtlpEndpoint!);
            o.Protocol = t.OtlpProtocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
            if (o.Protocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath is "/" or "")
                endpoint = new Uri(endpoint, signalPath);
            o.Endpoint = endpoint;
        };
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(t.ServiceName, serviceVersion: typeof(TelemetryHosting).Assembly.GetName().Version?.ToString()))
            .WithTracing(tracing =>
            {
                tracing.AddAspNetCoreInstrumentation(o => o.Filter = ctx => ctx.Request.Path != "/metrics" && ctx.Request.Path != "/health")
                    .AddSource(EngineTelemetry.Name);
                if (otlp) tracing.AddOtlpExporter(Otlp("v1/traces"));
            })
            .WithMetrics(metrics =>
            {
                metrics.AddAspNetCoreInstrumentation().AddMeter(EngineTelemetry.Name).AddPrometheusExporter();
                if (otlp) metrics.AddOtlpExporter(Otlp("v1/metrics"));
            });
        return builder;
    }
}
