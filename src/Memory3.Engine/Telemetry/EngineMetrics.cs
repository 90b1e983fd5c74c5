using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Memory3.Engine.Telemetry;

/// <summary>
/// The engine's instruments, on <see cref="EngineTelemetry.Meter"/>. Prometheus names (dots become underscores, the
/// unit is appended) and the vLLM metric each corresponds to:
/// <list type="table">
/// <item><c>memory3.request.time_to_first_token</c> (s) — <c>vllm:time_to_first_token_seconds</c></item>
/// <item><c>memory3.request.inter_token_latency</c> (s) — <c>vllm:inter_token_latency_seconds</c> (formerly time_per_output_token)</item>
/// <item><c>memory3.request.e2e_latency</c> (s) — <c>vllm:e2e_request_latency_seconds</c></item>
/// <item><c>memory3.request.queue_time</c> (s) — <c>vllm:request_queue_time_seconds</c></item>
/// <item><c>memory3.sequences.running</c>, <c>memory3.sequences.waiting</c> — <c>vllm:num_requests_running</c>, <c>vllm:num_requests_waiting</c></item>
/// <item><c>memory3.batch.tokens</c> — <c>vllm:iteration_tokens_total</c>; <c>memory3.batch.size</c> (sequences per step)</item>
/// <item><c>memory3.step.duration{phase}</c> (s) — phase prefill, decode or mixed</item>
/// <item><c>memory3.tokens.prompt</c>, <c>memory3.tokens.generated</c> — <c>vllm:prompt_tokens_total</c>, <c>vllm:generation_tokens_total</c></item>
/// <item><c>memory3.requests.finished{reason}</c> — <c>vllm:request_success_total{finished_reason}</c>; reason stop, length, abort, error, rejected</item>
/// <item><c>memory3.step.failures</c> — steps that threw</item>
/// <item><c>memory3.kv.slots.free</c> — free KV slots (vLLM's <c>kv_cache_usage_perc</c> is 1 - free/total)</item>
/// </list>
/// </summary>
public static class EngineMetrics
{
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
    private static readonly double[] TokenBuckets = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

    public static readonly Histogram<double> TimeToFirstToken = Seconds("memory3.request.time_to_first_token", "Time from admission to the first generated token");
    public static readonly Histogram<double> InterTokenLatency = Seconds("memory3.request.inter_token_latency", "Time between two tokens of one sequence");
    public static readonly Histogram<double> EndToEndLatency = Seconds("memory3.request.e2e_latency", "Time from admission to the request's last token");
    public static readonly Histogram<double> QueueTime = Seconds("memory3.request.queue_time", "Time from admission until the request's first step");
    public static readonly Histogram<double> StepDuration = Seconds("memory3.step.duration", "Duration of one engine step");
    public static readonly Histogram<int> BatchTokens = EngineTelemetry.Meter.CreateHistogram<int>("memory3.batch.tokens", "{token}",
        "Tokens in one engine step (prefill chunks and decode tokens)", advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = TokenBuckets.Select(b => (int)b).ToArray() });
    public static readonly Histogram<int> BatchSize = EngineTelemetry.Meter.CreateHistogram<int>("memory3.batch.size", "{sequence}",
        "Sequences in one engine step", advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
    public static readonly Counter<long> PromptTokens = EngineTelemetry.Meter.CreateCounter<long>("memory3.tokens.prompt", "{token}", "Prompt tokens prefilled");
    public static readonly Counter<long> GeneratedTokens = EngineTelemetry.Meter.CreateCounter<long>("memory3.tokens.generated", "{token}", "Tokens generated");
    public static readonly Counter<long> RequestsFinished = EngineTelemetry.Meter.CreateCounter<long>("memory3.requests.finished", "{request}", "Requests finished, by reason");
    public static readonly Counter<long> RetrievalFailures = EngineTelemetry.Meter.CreateCounter<long>("memory3.memory.retrieval_failures", "{retrieval}", "Memory retrievals that failed (the window read no memory)");
    public static readonly Counter<long> MemoryRefreshes = EngineTelemetry.Meter.CreateCounter<long>("memory3.memory.refreshes", "{retrieval}", "Memory retrievals attached to sequences");
    public static readonly Counter<long> StepFailures = EngineTelemetry.Meter.CreateCounter<long>("memory3.step.failures", "{step}", "Engine steps that threw");

    private static readonly ConcurrentDictionary<object, Func<(int Running, int Waiting, int FreeSlots)>> s_engines = new();

    static EngineMetrics()
    {
        EngineTelemetry.Meter.CreateObservableGauge("memory3.sequences.running", () => Sum(0), "{sequence}", "Sequences being stepped");
        EngineTelemetry.Meter.CreateObservableGauge("memory3.sequences.waiting", () => Sum(1), "{sequence}", "Sequences admitted and waiting for a slot");
        EngineTelemetry.Meter.CreateObservableGauge("memory3.kv.slots.free", () => Sum(2), "{slot}", "Free KV slots");
    }

    /// <summary>Adds an engine to the gauges; dispose the result to remove it.</summary>
    public static IDisposable Register(object engine, Func<(int Running, int Waiting, int FreeSlots)> read)
    {
        s_engines[engine] = read;
        return new Unregister(engine);
    }

    private sealed class Unregister(object engine) : IDisposable
    {
        public void Dispose() => s_engines.TryRemove(engine, out _);
    }

    private static int Sum(int which)
    {
        int total = 0;
        foreach (var read in s_engines.Values)
        {
            var v = read();
            total += which == 0 ? v.Running : which == 1 ? v.Waiting : v.FreeSlots;
        }
        return total;
    }

    private static Histogram<double> Seconds(string name, string description) =>
        EngineTelemetry.Meter.CreateHistogram<double>(name, "s", description, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
}
