using Memory3.Engine.Model;

namespace Memory3.Engine.Inference;

/// <summary>Per sequence of the batch, in order: its last row's logits [vocab] (or all rows' when asked).</summary>
public sealed record StepOutput(float[][] Logits);

/// <summary>Runs one flattened step of the model. Called only on the engine thread. Tests use a fake.</summary>
public interface IModelRunner : IDisposable
{
    int VocabSize { get; }
    /// <summary>KV slots available (sequences that can be resident at once).</summary>
    int NumSlots { get; }
    int MaxTokensPerSlot { get; }
    StepOutput Step(StepBatch batch);
    /// <summary>Copies memories into a slot's memory region (cache indices <paramref name="memoryStart"/>..), before a step reads them.</summary>
    void WriteMemories(int slot, int memoryStart, IReadOnlyList<Memory.DecodedMemory> memories);
}

/// <summary>Creates the runner on the engine thread (tensors belong to the thread that steps them).</summary>
public interface IModelRunnerFactory
{
    IModelRunner Create(EngineOptions options, int maxModelLen);
}

/// <summary>The real runner: a <see cref="CausalLM"/> and its preallocated <see cref="KvCachePool"/>.</summary>
public sealed class CausalLMRunner(CausalLM model, KvCachePool pool) : IModelRunner
{
    public int VocabSize => model.Config.VocabSize;
    public int NumSlots => pool.NumSlots;
    public int MaxTokensPerSlot => pool.MaxTokensPerSlot;
    public CausalLM Model => model;

    public StepOutput Step(StepBatch batch) => new(model.Forward(batch, pool));

    public void WriteMemories(int slot, int memoryStart, IReadOnlyList<Memory.DecodedMemory> memories) =>
        model.WriteMemories(pool, slot, memoryStart, memories.Select(m => (m.Keys, m.Values)).ToList());

    public void Dispose()
    {
        pool.Dispose();
        model.Dispose();
    }
}

/// <summary>Loads a model directory and sizes the KV pool from <see cref="EngineOptions"/>.</summary>
public sealed class CausalLMRunnerFactory(string modelDir, ModelOptions modelOptions) : IModelRunnerFactory
{
    public IModelRunner Create(EngineOptions options, int maxModelLen)
    {
        var model = CausalLM.Load(modelDir, modelOptions);
        try
        {
            int slots = options.MaxNumSeqs;
            if (options.KvCacheBytes > 0)
            {
                slots = Math.Min(slots, KvCachePool.SlotsForBudget(model.Config, options.KvCacheBytes, maxModelLen, model.DType));
                if (slots < 1)
                    throw new ModelLoadException($"Engine:KvCacheBytes ({options.KvCacheBytes}) holds no slot of {maxModelLen} tokens " +
                        $"({KvCachePool.BytesFor(model.Config, 1, maxModelLen, model.DType)} bytes each); raise it or lower Engine:MaxModelLen");
            }
            return new CausalLMRunner(model, model.CreatePool(slots, maxModelLen));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
