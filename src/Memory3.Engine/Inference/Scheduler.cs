using Memory3.Engine.Model;

namespace Memory3.Engine.Inference;

/// <summary>One sequence's share of a step: <see cref="NumTokens"/> tokens starting at its <see cref="Sequence.NumComputed"/>.</summary>
public readonly record struct ScheduledSequence(Sequence Sequence, int NumTokens, int CacheStart)
{
    /// <summary>After this step the sequence's known tokens are all computed: its logits are sampled.</summary>
    public bool Samples => CacheStart + NumTokens == Sequence.TotalTokens;
    public bool IsPrefill => CacheStart < Sequence.PromptLength;
}

/// <summary>A scheduling decision as data: which sequences run in the next step and how many tokens each.</summary>
public sealed record SchedulerDecision(IReadOnlyList<ScheduledSequence> Items)
{
    public static SchedulerDecision Empty { get; } = new(Array.Empty<ScheduledSequence>());
    public bool IsEmpty => Items.Count == 0;

    public int TotalTokens
    {
        get { int t = 0; for (int i = 0; i < Items.Count; i++) t += Items[i].NumTokens; return t; }
    }

    /// <summary>The flattened batch: each sequence's next tokens at positions equal to their cache indices.</summary>
    public StepBatch ToBatch()
    {
        int total = TotalTokens;
        var ids = new int[total];
        var pos = new int[total];
        var slices = new SequenceSlice[Items.Count];
        int row = 0;
        for (int i = 0; i < Items.Count; i++)
        {
            var it = Items[i];
            slices[i] = new SequenceSlice(it.Sequence.Slot, row, it.NumTokens, it.CacheStart);
            for (int j = 0; j < it.NumTokens; j++)
            {
                ids[row + j] = it.Sequence.TokenAt(it.CacheStart + j);
                pos[row + j] = it.CacheStart + j;
            }
            row += it.NumTokens;
        }
        return new StepBatch { TokenIds = ids, Positions = pos, Sequences = slices };
    }
}

/// <summary>
/// Decides each step which sequences run and how many tokens each gets, under <c>max_num_seqs</c> and
/// <c>max_batched_tokens</c> (vLLM's v1 scheduler, without preemption: a sequence's slot holds its whole context).
/// </summary>
public interface IScheduler
{
    int RunningCount { get; }
    int WaitingCount { get; }
    int FreeSlots { get; }
    int TotalSlots { get; }
    bool HasWork { get; }
    void Add(Sequence seq);
    /// <summary>Removes the sequence wherever it is and frees its slot; false when it was not there.</summary>
    bool Abort(Sequence seq);
    SchedulerDecision Schedule();
    /// <summary>Advances the scheduled sequences, samples those whose logits are final, and retires finished ones.</summary>
    void Update(SchedulerDecision decision, StepOutput output);
    /// <summary>The step failed: its sequences get an error event and are retired; the others are untouched.</summary>
    void Fail(SchedulerDecision decision, string message);
}

public sealed class Scheduler : IScheduler
{
    private readonly int _maxNumSeqs, _maxBatchedTokens, _maxPrefillChunk, _maxTokensPerSlot;
    private readonly LinkedList<Sequence> _waiting = new();
    private readonly List<Sequence> _running = [];
    private readonly Stack<int> _freeSlots = new();

    public Scheduler(EngineOptions options, int numSlots, int maxTokensPerSlot)
    {
        var problems = options.Validate();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(options));
        if (numSlots < 1) throw new ArgumentOutOfRangeException(nameof(numSlots));
        _maxNumSeqs = options.MaxNumSeqs;
        _maxBatchedTokens = options.MaxBatchedTokens;
        _maxPrefillChunk = options.MaxPrefillChunk > 0 ? options.MaxPrefillChunk : int.MaxValue;
        _maxTokensPerSlot = maxTokensPerSlot;
        TotalSlots = numSlots;
        for (int s = numSlots - 1; s >= 0; s--) _freeSlots.Push(s);
    }

    public int RunningCount => _running.Count;
    public int WaitingCount => _waiting.Count;
    public int FreeSlots => _freeSlots.Count;
    public int TotalSlots { get; }
    public bool HasWork => _running.Count > 0 || _waiting.Count > 0;
    public IReadOnlyList<Sequence> Running => _running;

    public void Add(Sequence seq)
    {
        if (seq.Slot >= 0 || seq.IsFinished) throw new InvalidOperationException("sequence already scheduled or finished");
        if (seq.PromptLength + seq.MaxNewTokens > _maxTokensPerSlot + 1)
            throw new ArgumentException($"sequence needs {seq.PromptLength + seq.MaxNewTokens - 1} KV entries; a slot holds {_maxTokensPerSlot}");
        _waiting.AddLast(seq);
    }

    public bool Abort(Sequence seq)
    {
        seq.MarkAborted();
        if (_waiting.Remove(seq)) return true;
        if (!_running.Remove(seq)) return false;
        Release(seq);
        return true;
    }

    public SchedulerDecision Schedule()
    {
        if (!HasWork) return SchedulerDecision.Empty;
        var items = new List<ScheduledSequence>(_running.Count + 4);
        int budget = _maxBatchedTokens;
        // Decode tokens first (they keep inter-token latency low), then prefill chunks of running sequences.
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            var s = _running[i];
            if (s.InPrefill) continue;
            int n = s.TotalTokens - s.NumComputed;
            if (n <= 0) continue;
            n = Math.Min(n, budget);
            items.Add(new ScheduledSequence(s, n, s.NumComputed));
            budget -= n;
        }
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            var s = _running[i];
            if (!s.InPrefill) continue;
            int n = Math.Min(Math.Min(s.TotalTokens - s.NumComputed, budget), _maxPrefillChunk);
            items.Add(new ScheduledSequence(s, n, s.NumComputed));
            budget -= n;
        }
        // Then admit waiting sequences, first come first served, while slots, sequences and tokens remain.
        while (budget > 0 && _waiting.First is { } node && _running.Count < _maxNumSeqs && _freeSlots.Count > 0)
        {
            var s = node.Value;
            _waiting.RemoveFirst();
            s.Slot = _freeSlots.Pop();
            _running.Add(s);
            s.Observer.OnScheduled(s);
            int n = Math.Min(Math.Min(s.TotalTokens, budget), _maxPrefillChunk);
            items.Add(new ScheduledSequence(s, n, 0));
            budget -= n;
        }
        return items.Count == 0 ? SchedulerDecision.Empty : new SchedulerDecision(items);
    }

    public void Update(SchedulerDecision decision, StepOutput output)
    {
        if (output.Logits.Length != decision.Items.Count)
        {
            Fail(decision, $"the model returned {output.Logits.Length} outputs for {decision.Items.Count} sequences");
            return;
        }
        for (int i = 0; i < decision.Items.Count; i++)
        {
            var it = decision.Items[i];
            var s = it.Sequence;
            if (s.IsFinished) continue; // aborted meanwhile
            s.NumComputed = it.CacheStart + it.NumTokens;
            if (!it.Samples) continue;
            bool finished;
            try { finished = s.Accept(output.Logits[i]); }
            catch (Exception e)
            {
                s.Fail($"sampling failed: {e.Message}");
                finished = true;
            }
            if (finished && _running.Remove(s)) Release(s);
        }
    }

    public void Fail(SchedulerDecision decision, string message)
    {
        for (int i = 0; i < decision.Items.Count; i++)
        {
            var s = decision.Items[i].Sequence;
            if (!_running.Remove(s)) continue;
            Release(s);
            s.Fail(message);
        }
    }

    /// <summary>Fails every sequence (shutdown).</summary>
    public void FailAll(string message)
    {
        foreach (var s in _running.ToArray()) { _running.Remove(s); Release(s); s.Fail(message); }
        foreach (var s in _waiting.ToArray()) { _waiting.Remove(s); s.Fail(message); }
    }

    private void Release(Sequence s)
    {
        if (s.Slot >= 0) _freeSlots.Push(s.Slot);
        s.Slot = -1;
    }
}
