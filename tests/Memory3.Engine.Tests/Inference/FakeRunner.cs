using Memory3.Engine.Inference;
using Memory3.Engine.Model;

namespace Memory3.Engine.Tests.Inference;

/// <summary>
/// A model stand-in: the next token is a function of the last token and its position (100..399), so outputs are
/// deterministic and independent of batching. Records every batch; throws on a batch holding <see cref="PoisonToken"/>.
/// </summary>
public sealed class FakeRunner(int vocab = 512, int slots = 4, int maxTokensPerSlot = 256) : IModelRunner, IModelRunnerFactory
{
    public const int PoisonToken = 7;
    public int VocabSize => vocab;
    public int NumSlots => slots;
    public int MaxTokensPerSlot => maxTokensPerSlot;
    public List<StepBatch> Batches { get; } = [];
    public int DelayMs { get; set; }

    public static int Next(int token, int position) => 100 + (token * 31 + position * 7) % 300;

    public StepOutput Step(StepBatch batch)
    {
        lock (Batches) Batches.Add(batch);
        if (DelayMs > 0) Thread.Sleep(DelayMs);
        if (Array.IndexOf(batch.TokenIds, PoisonToken) >= 0) throw new InvalidOperationException("poisoned batch");
        var logits = new float[batch.Sequences.Length][];
        for (int i = 0; i < batch.Sequences.Length; i++)
        {
            var s = batch.Sequences[i];
            int row = s.Start + s.Length - 1;
            var l = new float[vocab];
            l[Next(batch.TokenIds[row], batch.Positions[row])] = 20f;
            logits[i] = l;
        }
        return new StepOutput(logits);
    }

    /// <summary>Every WriteMemories call: slot, memory start and the memories' ids.</summary>
    public List<(int Slot, int MemoryStart, string[] Ids)> MemoryWrites { get; } = [];

    public void WriteMemories(int slot, int memoryStart, IReadOnlyList<Memory3.Engine.Memory.DecodedMemory> memories)
    {
        lock (MemoryWrites) MemoryWrites.Add((slot, memoryStart, memories.Select(m => m.Id).ToArray()));
    }

    public IModelRunner Create(EngineOptions options, int maxModelLen) => this;
    public void Dispose() { }
}
