using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Memory3.Engine.Telemetry;

/// <summary>
/// The engine's one Meter and one ActivitySource. The server wires exporters to these names; the engine never
/// references an exporter. Instrument names are under <c>memory3.*</c>.
/// </summary>
public static class EngineTelemetry
{
    public const string Name = "Memory3.Engine";
    public static readonly Meter Meter = new(Name, "1.0");
    public static readonly ActivitySource ActivitySource = new(Name, "1.0");
}
