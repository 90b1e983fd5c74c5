using Memory3.Engine.Inference;
using Memory3.Engine.Model;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Memory3.Server.Tests;

/// <summary>
/// The server over the random-weight test model (float32, so batched and alone agree bit for bit) and no bank unless a
/// test names one, or over a fake runner. (appsettings.json's defaults — the trained model with its seeded bank — are
/// what <c>ShippedModelTests</c> runs.)
/// </summary>
public class ServerFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private readonly IModelRunnerFactory? _runner;

    internal ServerFactory(Dictionary<string, string?>? settings, IModelRunnerFactory? runner)
    {
        _settings = new()
        {
            ["Memory3:Model:Path"] = "models/tiny-random", ["Memory3:Bank:Path"] = "", ["Memory3:Bank:SeedKnowledge"] = "false",
            ["Memory3:Model:DType"] = "float32", ["Memory3:Engine:MaxNumSeqs"] = "8", ["Memory3:Engine:MaxModelLen"] = "512",
        };
        if (settings is not null) foreach (var (k, v) in settings) _settings[k] = v;
        _runner = runner;
    }

    public ServerFactory() : this(null, null) { }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (k, v) in _settings) builder.UseSetting(k, v);
        builder.UseEnvironment("Testing");
        if (_runner is not null) builder.ConfigureTestServices(s => s.AddSingleton(_runner));
    }

    public InferenceEngine Engine => (InferenceEngine)Services.GetRequiredService<IInferenceEngine>();

    public async Task<HttpClient> ReadyClientAsync()
    {
        var c = CreateClient();
        await Engine.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        return c;
    }

    public async Task WaitIdleAsync()
    {
        for (int i = 0; i < 500; i++)
        {
            var s = Engine.GetStats();
            if (s.Running == 0 && s.Waiting == 0 && s.FreeSlots == s.TotalSlots) return;
            await Task.Delay(10);
        }
        Assert.Fail($"engine not idle: {Engine.GetStats()}");
    }
}

/// <summary>A stand-in model: deterministic next tokens (100..399), optional delay per step, throws on token 7.</summary>
public sealed class FakeRunner(int slots = 4, int maxTokens = 512) : IModelRunner, IModelRunnerFactory
{
    public const int PoisonToken = 7;
    public volatile int DelayMs;
    public ManualResetEventSlim? Gate;
    public int VocabSize => 512;
    public int NumSlots => slots;
    public int MaxTokensPerSlot => maxTokens;

    public StepOutput Step(StepBatch batch)
    {
        if (DelayMs > 0) Thread.Sleep(DelayMs);
        if (Array.IndexOf(batch.TokenIds, PoisonToken) >= 0) throw new InvalidOperationException("poisoned batch");
        var logits = new float[batch.Sequences.Length][];
        for (int i = 0; i < logits.Length; i++)
        {
            var s = batch.Sequences[i];
            int row = s.Start + s.Length - 1;
            logits[i] = new float[512];
            logits[i][100 + (batch.TokenIds[row] * 31 + batch.Positions[row] * 7) % 300] = 20f;
        }
        return new StepOutput(logits);
    }

    /// <summary>Every WriteMemories call: slot, memory start and the memories' ids.</summary>
    public List<(int Slot, int MemoryStart, string[] Ids)> MemoryWrites { get; } = [];

    public void WriteMemories(int slot, int memoryStart, IReadOnlyList<Memory3.Engine.Memory.DecodedMemory> memories)
    {
        lock (MemoryWrites) MemoryWrites.Add((slot, memoryStart, memories.Select(m => m.Id).ToArray()));
    }

    public IModelRunner Create(EngineOptions options, int maxModelLen)
    {
        Gate?.Wait();
        return this;
    }

    public void Dispose() { }
}
