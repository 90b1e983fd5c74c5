using Memory3.Engine.Memory;
using Memory3.Engine.Model;

namespace Memory3.Engine.Inference;

/// <summary>
/// One sequence's share of a step: <see cref="NumTokens"/> tokens starting at context index <see cref="CacheStart"/>
/// (its <see cref="Sequence.NumComputed"/>), or, with <see cref="Prefix"/>, a memory sequence's reference prefix.
/// </summary>
public readonly record struct ScheduledSequence(Sequence Sequence, int NumTokens, int CacheStart, bool Prefix = false)
{
    /// <summary>After this step the sequence's known tokens are all computed: its logits are sampled.</summary>
    public bool Samples => !Prefix && CacheStart + NumTokens == Sequence.TotalTokens;
    public bool IsPrefill => Prefix || CacheStart < Sequence.PromptLength;
}

/// <summary>
/// A scheduling decision as data: which sequences run in the next step and how many tokens each, and the memories
/// to copy into slots before the step (<see cref="MemoryWrites"/>).
/// </summary>
public sealed record SchedulerDecision(IReadOnlyList<ScheduledSequence> Items)
{
    public static SchedulerDecision Empty { get; } = new(Array.Empty<ScheduledSequence>());
    public bool IsEmpty => Items.Count == 0 && MemoryWrites.Count == 0;
    public IReadOnlyList<MemoryWrite> MemoryWrites { get; init; } = Array.Empty<MemoryWrite>();

    public int TotalTokens
    {
        get { int t = 0; for (int i = 0; i < Items.Count; i++) t += Items[i].NumTokens; return t; }
    }

    /// <summary>
    /// The flattened batch. Plain sequences: each token at position = cache index = context index. Memory sequences
    /// (DESIGN §4): the prefix at cache and positions 0..P-1; context index i at cache P+M+i and position P+R+i, with
    /// the memory region [P, P+M) of which the first MemoryValid entries hold memories.
    /// </summary>
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
            var seq = it.Sequence;
            if (seq.Memory is not { } m)
            {
                slices[i] = new SequenceSlice(seq.Slot, row, it.NumTokens, it.CacheStart);
                for (int j = 0; j < it.NumTokens; j++)
                {
                    ids[row + j] = seq.TokenAt(it.CacheStart + j);
                    pos[row + j] = it.CacheStart + j;
                }
            }
            else if (it.Prefix)
            {
                slices[i] = new SequenceSlice(seq.Slot, row, it.NumTokens, 0);
                for (int j = 0; j < it.NumTokens; j++) { ids[row + j] = m.Layout.Prefix[j]; pos[row + j] = j; }
            }
            else
            {
                var l = m.Layout;
                slices[i] = new SequenceSlice(seq.Slot, row, it.NumTokens, l.ContextCacheStart + it.CacheStart,
                    MemoryStart: l.MemoryStart, MemoryLength: l.MemoryLength, MemoryValid: m.MemoryValid);
                for (int j = 0; j < it.NumTokens; j++)
                {
                    ids[row + j] = seq.TokenAt(it.CacheStart + j);
                    pos[row + j] = l.ContextPosition + it.CacheStart + j;
                }
            }
            row += it.NumTokens;
        }
        return new StepBatch { TokenIds = ids, Positions = pos, Sequences = slices };
    }
}

/// <summary>
/// Decides each step which sequences run and how many tokens each gets, under <c>max_num_seqs</c> and
/// <c>max_batched_tokens</c> (vLLM's v1 scheduler, without preemption: a sequence's slot holds its whole context).
/// Memory sequences are prefilled in chunks of their retrieval interval; at each chunk boundary (and every interval
/// of decoded tokens) their retrieval starts off the engine thread and they are not scheduled until it has arrived
/// and its memories are in the decision's <see cref="SchedulerDecision.MemoryWrites"/>.
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
    private readonly Func<IReadOnlyList<int>, string> _decode;
    private readonly Action? _onMemoryReady;
    private readonly TimeSpan _retrievalTimeout;
    private long _retrievalFailures;

    /// <param name="decode">Token ids → query text (the tokenizer, special tokens skipped); null: ids joined by spaces.</param>
    /// <param name="onMemoryReady">Called (on any thread) when a retrieval completes: wake the engine loop.</param>
    public Scheduler(EngineOptions options, int numSlots, int maxTokensPerSlot, Func<IReadOnlyList<int>, string>? decode = null, Action? onMemoryReady = null)
    {
        _decode = decode ?? (ids => string.Join(' ', ids));
        _onMemoryReady = onMemoryReady;
        _retrievalTimeout = TimeSpan.FromMilliseconds(options.MemoryRetrievalTimeoutMs);
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
    /// <summary>Retrievals that failed (their windows read no memory).</summary>
    public long RetrievalFailures => Interlocked.Read(ref _retrievalFailures);

    public void Add(Sequence seq)
    {
        if (seq.Slot >= 0 || seq.IsFinished) throw new InvalidOperationException("sequence already scheduled or finished");
        if (seq.SlotTokensNeeded > _maxTokensPerSlot)
            throw new ArgumentException($"sequence needs {seq.SlotTokensNeeded} KV entries; a slot holds {_maxTokensPerSlot}");
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
        List<MemoryWrite>? writes = null;
        int budget = _maxBatchedTokens;
        // Decode tokens first (they keep inter-token latency low), then prefill chunks of running sequences.
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            var s = _running[i];
            if (s.InPrefill) continue;
            int n = s.TotalTokens - s.NumComputed;
            if (n <= 0) continue;
            if (!MemoryReady(s, ref writes)) continue;
            n = Math.Min(n, budget);
            items.Add(new ScheduledSequence(s, n, s.NumComputed));
            budget -= n;
        }
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            var s = _running[i];
            if (!s.InPrefill) continue;
            if (s.Memory is { PrefixDone: false }) continue; // its prefix is in this step already (admitted below) or failed
            if (!MemoryReady(s, ref writes)) continue;
            int n = Math.Min(Math.Min(ChunkLimit(s), budget), _maxPrefillChunk);
            items.Add(new ScheduledSequence(s, n, s.NumComputed));
            budget -= n;
        }
        // Then admit waiting sequences, first come first served, while slots, sequences and tokens remain.
        while (budget > 0 && _waiting.First is { } node && _running.Count < _maxNumSeqs && _freeSlots.Count > 0)
        {
            var s = node.Value;
            if (s.Memory is { } m && m.Layout.Prefix.Length > budget && items.Count > 0) break; // the prefix goes in one piece
            _waiting.RemoveFirst();
            s.Slot = _freeSlots.Pop();
            _running.Add(s);
            s.Observer.OnScheduled(s);
            if (s.Memory is { } mem)
            {
                // The prefix (the attention sink) runs while the first chunk's memories are being retrieved.
                StartRetrieval(s, 0);
                if (mem.Layout.Prefix.Length == 0) { mem.PrefixDone = true; continue; }
                items.Add(new ScheduledSequence(s, mem.Layout.Prefix.Length, 0, Prefix: true));
                budget -= mem.Layout.Prefix.Length;
                continue;
            }
            int n = Math.Min(Math.Min(s.TotalTokens, budget), _maxPrefillChunk);
            items.Add(new ScheduledSequence(s, n, 0));
            budget -= n;
        }
        if (items.Count == 0 && writes is null) return SchedulerDecision.Empty;
        return new SchedulerDecision(items) { MemoryWrites = (IReadOnlyList<MemoryWrite>?)writes ?? Array.Empty<MemoryWrite>() };
    }

    /// <summary>A memory sequence's prefill chunk stops at its retrieval boundary (each chunk reads its own memories).</summary>
    private static int ChunkLimit(Sequence s)
    {
        int left = s.PromptLength - s.NumComputed;
        if (s.Memory is not { } m) return left;
        int interval = m.Layout.Interval;
        int next = (s.NumComputed / interval + 1) * interval;
        return Math.Min(left, next - s.NumComputed);
    }

    /// <summary>
    /// The context index at which the sequence must read new memories before its next forward, or -1: a prompt chunk
    /// start, or (decoding) generated token g with g a positive multiple of the interval (MemorySchedule).
    /// </summary>
    private static int DueBoundary(Sequence s)
    {
        var m = s.Memory!;
        int interval = m.Layout.Interval;
        if (s.InPrefill) return s.NumComputed % interval == 0 ? s.NumComputed : -1;
        int g = s.NumComputed - s.PromptLength;
        return MemorySchedule.RefreshBeforeDecode(g, interval, out _) ? s.NumComputed : -1;
    }

    /// <summary>
    /// True when the sequence may run now: no memory, or its memories for the current chunk are attached. Applies a
    /// retrieval that has arrived (adding its write to the decision) and starts one that is due.
    /// </summary>
    private bool MemoryReady(Sequence s, ref List<MemoryWrite>? writes)
    {
        if (s.Memory is not { } m) return true;
        if (m.Pending is { } t)
        {
            if (!t.IsCompleted) return false;
            Apply(s, m, t, ref writes);
        }
        int due = DueBoundary(s);
        if (due >= 0 && due != m.AttachedAt)
        {
            StartRetrieval(s, due);
            return false;
        }
        return true;
    }

    private void StartRetrieval(Sequence s, int boundary)
    {
        var m = s.Memory!;
        int interval = m.Layout.Interval;
        (string Phase, int Start, int End, int[] Ids) w;
        if (boundary < s.PromptLength)
        {
            int end = Math.Min(boundary + interval, s.PromptLength);
            var ids = new int[end - boundary];
            for (int j = 0; j < ids.Length; j++) ids[j] = s.TokenAt(boundary + j);
            w = ("prompt", boundary, end, ids);
        }
        else
        {
            int g = boundary - s.PromptLength;
            var ids = new int[interval];
            for (int j = 0; j < interval; j++) ids[j] = s.Generated[g - interval + j];
            w = ("decode", g, g, ids);
        }
        string query = _decode(w.Ids);
        m.PendingWindow = (boundary, w.Phase, w.Start, w.End, query);
        var q = new MemoryQuery(query, m.Namespaces, m.Layout.MemoriesPerChunk);
        var source = m.Source;
        string phase = w.Phase;
        var timeout = _retrievalTimeout;
        var task = Task.Run(async () =>
        {
            using var span = Telemetry.EngineTelemetry.ActivitySource.StartActivity("retrieve");
            span?.SetTag("memory3.memory.phase", phase);
            span?.SetTag("memory3.memory.boundary", boundary);
            using var cts = new CancellationTokenSource(timeout);
            var got = await source.RetrieveAsync(q, cts.Token).AsTask().WaitAsync(timeout).ConfigureAwait(false);
            span?.SetTag("memory3.memory.hits", got.Memories.Count);
            return got;
        });
        m.Pending = task;
        if (_onMemoryReady is { } wake) task.ContinueWith(_ => wake(), TaskScheduler.Default);
    }

    private void Apply(Sequence s, SequenceMemory m, Task<RetrievedMemories> t, ref List<MemoryWrite>? writes)
    {
        m.Pending = null;
        RetrievedMemories got;
        if (t.IsCompletedSuccessfully) got = t.Result;
        else
        {
            _ = t.Exception; // observed
            got = RetrievedMemories.None;
            m.Failures++;
            Interlocked.Increment(ref _retrievalFailures);
            Telemetry.EngineMetrics.RetrievalFailures.Add(1);
        }
        var (boundary, phase, start, end, query) = m.PendingWindow;
        int count = Math.Min(got.Memories.Count, m.Layout.MemoriesPerChunk);
        var mems = count == got.Memories.Count ? got.Memories : got.Memories.Take(count).ToList();
        m.MemoryValid = count * m.Layout.TokensPerHead;
        m.AttachedAt = boundary;
        m.Refreshes++;
        m.ProcessHits += got.ProcessHits;
        m.RedisHits += got.RedisHits;
        m.DiskHits += got.DiskHits;
        if (phase == "decode" && m.Windows.Count > 0 && m.Windows[^1].Phase == "decode") m.Windows[^1].End = start;
        m.Windows.Add(new MemoryWindow(phase, start, end, query, got.Citations.Take(count).ToList()));
        if (count > 0) (writes ??= []).Add(new MemoryWrite(s, s.Slot, m.Layout.MemoryStart, mems));
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
            if (it.Prefix) { s.Memory!.PrefixDone = true; continue; }
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
