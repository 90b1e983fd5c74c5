using System.Diagnostics;
using System.Text.Json;
using Memory3.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Training;

/// <summary>One training stage: its length, batch, and learning-rate schedule (linear warm-up, cosine decay to <see cref="MinLr"/>).</summary>
public sealed record StageOptions(string Name, int Steps, int BatchSize, double Lr, double MinLr, int WarmupSteps,
    double WeightDecay = 0.1, double ClipNorm = 1.0, int CheckpointEvery = 100)
{
    public double LrAt(int step)
    {
        if (step < WarmupSteps) return Lr * (step + 1) / WarmupSteps;
        double t = Math.Min(1.0, (double)(step - WarmupSteps) / Math.Max(1, Steps - WarmupSteps));
        return MinLr + 0.5 * (Lr - MinLr) * (1 + Math.Cos(Math.PI * t));
    }
}

/// <summary>What a step reports: for progress bars and the loss log.</summary>
public sealed record StepReport(string Stage, int Step, int Steps, double Loss, double Lr, double GradNorm, long Tokens, double TokensPerSecond);

/// <summary>
/// The training loop: AdamW, the stage's schedule, gradient clipping, and a checkpoint every
/// <see cref="StageOptions.CheckpointEvery"/> steps (weights, optimizer state, step) from which <see cref="Run"/>
/// resumes. Samples are a pure function of (step, index), so a resumed stage sees the data it would have seen.
/// </summary>
public sealed class Trainer
{
    private readonly TrainingModel _model;
    private readonly IReadOnlyList<int[]> _references;
    private readonly int[] _prefix;
    private readonly int _interval;
    private readonly int _memoriesPerChunk;

    public Trainer(TrainingModel model, IReadOnlyList<int[]> references, int[] prefix)
    {
        _model = model;
        _references = references;
        _prefix = prefix;
        var mem = model.Config.Memory ?? throw new ArgumentException("training needs a Memory3 config");
        _interval = mem.RetrievalInterval;
        _memoriesPerChunk = mem.MemoriesPerChunk;
    }

    /// <summary>Runs (or resumes) a stage, checkpointing under <paramref name="checkpointDir"/>; appends each step to <paramref name="log"/>.</summary>
    /// <param name="atCheckpoint">Called after each checkpoint with the step reached (e.g. to score probes).</param>
    public void Run(StageOptions o, Func<int, int, TrainSample> sample, string checkpointDir, Action<StepReport>? report = null, TextWriter? log = null,
        Action<int>? atCheckpoint = null, CancellationToken ct = default)
    {
        Directory.CreateDirectory(checkpointDir);
        var parameters = _model.Parameters().ToList();
        var decay = parameters.Where(p => p.dim() >= 2).ToList();
        var noDecay = parameters.Where(p => p.dim() < 2).ToList();
        var optimizer = optim.AdamW([new TorchSharp.Modules.AdamW.ParamGroup(decay, new TorchSharp.Modules.AdamW.Options { weight_decay = o.WeightDecay }),
                                     new TorchSharp.Modules.AdamW.ParamGroup(noDecay, new TorchSharp.Modules.AdamW.Options { weight_decay = 0 })],
            lr: o.Lr, beta1: 0.9, beta2: 0.95, eps: 1e-8);
        int start = Resume(checkpointDir, o.Name, optimizer);
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        for (int step = start; step < o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            double lr = o.LrAt(step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            var batch = Enumerable.Range(0, o.BatchSize).Select(i => sample(step, i)).ToList();
            optimizer.zero_grad();
            double loss;
            using (var scope = NewDisposeScope())
            {
                var l = Loss(batch);
                l.backward();
                loss = l.item<float>();
            }
            double norm = nn.utils.clip_grad_norm_(parameters, o.ClipNorm);
            optimizer.step();
            long stepTokens = batch.Sum(b => (long)b.Tokens.Length);
            tokens += stepTokens;
            var r = new StepReport(o.Name, step + 1, o.Steps, loss, lr, norm, tokens, tokens / Math.Max(1e-9, clock.Elapsed.TotalSeconds));
            log?.WriteLine($"{o.Name},{step + 1},{loss:F5},{lr:E3},{norm:F4},{stepTokens},{clock.Elapsed.TotalSeconds:F1}");
            report?.Invoke(r);
            if ((step + 1) % o.CheckpointEvery == 0 || step + 1 == o.Steps)
            {
                log?.Flush();
                Checkpoint(checkpointDir, o.Name, step + 1, optimizer);
                atCheckpoint?.Invoke(step + 1);
            }
        }
    }

    /// <summary>Mean next-token cross-entropy over the batch's loss positions. Memory samples and plain ones run as two forwards.</summary>
    public Tensor Loss(IReadOnlyList<TrainSample> batch)
    {
        Tensor? sum = null;
        long count = 0;
        foreach (var (group, memory) in Groups(batch))
        {
            var (s, n) = GroupLoss(group, memory);
            sum = sum is null ? s : sum + s;
            count += n;
        }
        return sum! / Math.Max(1, count);
    }

    /// <summary>A batch split into its plain samples and its memory samples (each run as one forward), empty groups left out.</summary>
    private static IEnumerable<(List<TrainSample> Group, bool Memory)> Groups(IEnumerable<TrainSample> batch)
    {
        var plain = batch.Where(b => b.ChunkReferences is null).ToList();
        var withMemory = batch.Where(b => b.ChunkReferences is not null).ToList();
        if (plain.Count > 0) yield return (plain, false);
        if (withMemory.Count > 0) yield return (withMemory, true);
    }

    private (Tensor Sum, long Count) GroupLoss(List<TrainSample> group, bool memory)
    {
        var (logits, targets, count) = GroupLogits(group, memory);
        long n = logits.shape[0] * logits.shape[1];
        var loss = nn.functional.cross_entropy(logits.view(n, -1), tensor(targets, ScalarType.Int64), ignore_index: -100, reduction: nn.Reduction.Sum);
        return (loss, count);
    }

    /// <summary>
    /// The share of <paramref name="samples"/> whose every loss position is predicted right by the argmax: with the
    /// loss on an answer, whether greedy decoding would write exactly that answer (teacher forcing reaches the same
    /// argmaxes as long as every earlier one was right).
    /// </summary>
    public double ExactMatch(IReadOnlyList<TrainSample> samples, int batchSize = 32)
    {
        using var noGrad = no_grad();
        int right = 0;
        for (int start = 0; start < samples.Count; start += batchSize)
        {
            foreach (var (group, memory) in Groups(samples.Skip(start).Take(batchSize)))
            {
                using var scope = NewDisposeScope();
                var (logits, targets, _) = GroupLogits(group, memory);
                var predicted = logits.argmax(-1).data<long>().ToArray();
                long S = logits.shape[1];
                for (int b = 0; b < group.Count; b++)
                {
                    bool ok = true;
                    for (long i = 0; i < S && ok; i++)
                        if (targets[b * S + i] != -100 && predicted[b * S + i] != targets[b * S + i]) ok = false;
                    if (ok) right++;
                }
            }
        }
        return samples.Count == 0 ? 0 : (double)right / samples.Count;
    }

    private (Tensor Logits, long[] Targets, long Count) GroupLogits(List<TrainSample> group, bool memory)
    {
        int P = memory ? _prefix.Length : 0;
        int B = group.Count;
        int S = P + group.Max(g => g.Tokens.Length);
        var ids = new long[B * S];
        var targets = new long[B * S];
        Array.Fill(targets, -100);
        long count = 0;
        for (int b = 0; b < B; b++)
        {
            var g = group[b];
            for (int i = 0; i < P; i++) ids[b * S + i] = _prefix[i];
            for (int i = 0; i < g.Tokens.Length; i++)
            {
                ids[b * S + P + i] = g.Tokens[i];
                // Row P+i-1 predicts token i.
                if (i > 0 && g.Loss[i]) { targets[b * S + P + i - 1] = g.Tokens[i]; count++; }
            }
        }
        int contextPosition = memory ? P + _model.Config.Memory!.ReferenceMaxTokens : 0;
        var positions = Enumerable.Range(0, S).Select(i => i < P ? i : contextPosition + i - P).ToArray();
        var idT = tensor(ids, [B, S], ScalarType.Int64);
        using var mem = memory ? Memories(group, P, S) : null;
        return (_model.Forward(idT, positions, mem), targets, count);
    }

    /// <summary>Encodes the group's distinct references with the current weights and lays them out per row's chunk.</summary>
    private MemoryInputs Memories(List<TrainSample> group, int P, int S)
    {
        // A reference is a shared one (an index into the table) or a sample's own (an index into its Inline list).
        int[] Resolve(TrainSample g, int r) => g.Inline is { } own ? own[r] : _references[r];
        var slotOf = new Dictionary<int[], int>(ReferenceEqualityComparer.Instance);
        var distinct = new List<int[]>();
        foreach (var g in group)
            foreach (var r in g.ChunkReferences!.SelectMany(c => c))
            {
                var toks = Resolve(g, r);
                if (slotOf.TryAdd(toks, distinct.Count)) distinct.Add(toks);
            }
        var (keys, values) = _model.EncodeMemories(distinct, _prefix);
        int B = group.Count, K = _memoriesPerChunk;
        int chunks = group.Max(g => g.ChunkReferences!.Length);
        long kv = keys[0].shape[1], T = keys[0].shape[2], D = keys[0].shape[3];
        long M = (long)chunks * K * T;
        var index = new long[B * chunks * K];
        var visible = new bool[B * S * M];
        for (int b = 0; b < B; b++)
        {
            var refs = group[b].ChunkReferences!;
            for (int c = 0; c < chunks; c++)
                for (int j = 0; j < K; j++)
                    index[(b * chunks + c) * K + j] = c < refs.Length && j < refs[c].Length ? slotOf[Resolve(group[b], refs[c][j])] : 0;
            for (int i = P; i < P + group[b].Tokens.Length; i++)
            {
                int c = Math.Min((i - P) / _interval, refs.Length - 1);
                for (int j = 0; j < refs[c].Length; j++)
                    for (int t = 0; t < T; t++) visible[((long)b * S + i) * M + ((long)c * K + j) * T + t] = true;
            }
        }
        var idx = tensor(index, ScalarType.Int64);
        Tensor Layout(Tensor x) => x.index_select(0, idx).view(B, chunks * K, kv, T, D).permute(0, 2, 1, 3, 4).reshape(B, kv, M, D);
        var mk = keys.Select(Layout).ToArray();
        var mv = values.Select(Layout).ToArray();
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
        return new MemoryInputs { Keys = mk, Values = mv, Visible = tensor(visible, [B, S, M], ScalarType.Bool) };
    }

    private sealed record CheckpointState(string Stage, int Step);

    private void Checkpoint(string dir, string stage, int step, TorchSharp.Modules.AdamW optimizer)
    {
        string tmp = Path.Combine(dir, "tmp");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        _model.Save(tmp, StDType.F32);
        optimizer.save_state_dict(Path.Combine(tmp, "optimizer.bin"));
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(new CheckpointState(stage, step)));
        string final = Path.Combine(dir, "last");
        string old = Path.Combine(dir, "old");
        if (Directory.Exists(old)) Directory.Delete(old, true);
        if (Directory.Exists(final)) Directory.Move(final, old);
        Directory.Move(tmp, final);
        if (Directory.Exists(old)) Directory.Delete(old, true);
    }

    /// <summary>The step to start from: 0, or the checkpointed step of this stage (weights and optimizer restored).</summary>
    private int Resume(string dir, string stage, TorchSharp.Modules.AdamW optimizer)
    {
        string last = Path.Combine(dir, "last");
        if (!File.Exists(Path.Combine(last, "state.json"))) return 0;
        var state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(Path.Combine(last, "state.json")))!;
        if (state.Stage != stage) return 0;
        using var saved = TrainingModel.Load(last);
        using (no_grad())
        {
            var src = saved.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
            foreach (var (name, p) in _model.NamedParameters()) p.copy_(src[name]);
        }
        optimizer.load_state_dict(Path.Combine(last, "optimizer.bin"));
        return state.Step;
    }
}
