using Memory3.Engine.Inference;
using Memory3.Engine.Memory;
using Memory3.Engine.Model.Sampling;

namespace Memory3.Engine.Tests.Inference;

/// <summary>Memory sequences under the continuous-batching scheduler and engine, with a fake source and a fake runner.</summary>
public class MemorySchedulingTests
{
    private sealed class Recorder : ISequenceObserver
    {
        public List<TokenEvent> Events { get; } = [];
        public void OnScheduled(Sequence seq) { }
        public void OnEvent(Sequence seq, TokenEvent e) { lock (Events) Events.Add(e); }
    }

    /// <summary>Two memories per query (ids q{n}m{j}); optionally gated, or failing on query n.</summary>
    private sealed class FakeSource : IMemorySource
    {
        public List<string> Queries { get; } = [];
        public Func<string, Task>? Gate;
        public int FailOn = -1;
        public int PerQuery = 2;

        public async ValueTask<RetrievedMemories> RetrieveAsync(MemoryQuery query, CancellationToken ct = default)
        {
            int n;
            lock (Queries) { Queries.Add(query.Text); n = Queries.Count; }
            if (Gate is { } g) await g(query.Text);
            if (n == FailOn) throw new InvalidOperationException("tier down");
            var mems = new List<DecodedMemory>();
            var cites = new List<MemoryCitation>();
            for (int j = 0; j < PerQuery; j++)
            {
                var id = $"q{n}m{j}";
                mems.Add(new DecodedMemory(id, "default", "text " + id, [], [], []));
                cites.Add(new MemoryCitation(id, "default", "text " + id, 1.0 / (j + 1)));
            }
            return new RetrievedMemories(mems, cites, ProcessHits: 1, DiskHits: PerQuery - 1);
        }
    }

    private static readonly int[] PrefixIds = [3, 4, 5];
    private static MemoryLayout Layout(int interval = 64, int perChunk = 5) => new(PrefixIds, perChunk, 8, interval, 128);

    private static int[] Prompt(int n) => Enumerable.Range(0, n).Select(i => 40 + i % 200).ToArray();

    private static Sequence Seq(int[] prompt, int maxNew, Recorder r, IMemorySource? source, MemoryLayout? layout = null)
    {
        var s = new Sequence(1, 0, prompt, SamplingParams.Greedy with { MaxTokens = maxNew, IgnoreEos = true }, 512, maxNew, null, [], r);
        if (source is not null) s.Memory = new SequenceMemory(layout ?? Layout(), source, null);
        return s;
    }

    /// <summary>Steps like the engine: memory writes, then the forward; an empty decision waits for a retrieval.</summary>
    private static void Run(Scheduler s, FakeRunner runner, Action? afterStep = null, int maxSteps = 5000)
    {
        for (int i = 0; i < maxSteps && s.HasWork; i++)
        {
            var d = s.Schedule();
            foreach (var w in d.MemoryWrites) runner.WriteMemories(w.Slot, w.MemoryStart, w.Memories);
            if (d.Items.Count == 0) { Thread.Sleep(1); continue; }
            s.Update(d, runner.Step(d.ToBatch()));
            afterStep?.Invoke();
        }
    }

    private static string D(IEnumerable<int> ids) => string.Join(' ', ids);

    [Fact]
    public void RetrievalsHappenExactlyAtTheBoundariesWithTheRightQueries()
    {
        var runner = new FakeRunner(slots: 2, maxTokensPerSlot: 512);
        var sched = new Scheduler(new EngineOptions { MaxNumSeqs = 2, MaxBatchedTokens = 100 }, 2, 512);
        var source = new FakeSource();
        var r = new Recorder();
        var prompt = Prompt(150);
        var seq = Seq(prompt, 140, r, source);
        sched.Add(seq);
        Run(sched, runner);
        var generated = r.Events.Select(e => e.TokenId).ToArray();
        Assert.Equal(140, generated.Length);
        Assert.Equal([D(prompt[..64]), D(prompt[64..128]), D(prompt[128..150]), D(generated[..64]), D(generated[64..128])], source.Queries);

        // The prefix runs once, alone, at cache 0 and positions 0..P-1; no prompt chunk crosses a boundary.
        var slices = runner.Batches.SelectMany(b => b.Sequences.Select(x => (b, x))).ToList();
        var first = slices[0];
        Assert.Equal(PrefixIds, first.b.TokenIds);
        Assert.Equal([0, 1, 2], first.b.Positions);
        Assert.Equal(0, first.x.MemoryLength);
        var l = Layout();
        var context = slices.Skip(1).ToList();
        Assert.Equal(l.ContextCacheStart, context[0].x.CacheStart);
        Assert.Equal(l.ContextPosition, context[0].b.Positions[0]);
        Assert.All(context, c => Assert.Equal((l.MemoryStart, l.MemoryLength, 16), (c.x.MemoryStart, c.x.MemoryLength, c.x.MemoryValid)));
        Assert.Equal([64, 64, 22], context.Take(3).Select(c => c.x.Length));
        // Each retrieval's memories were written into the slot before the forward that read them.
        Assert.Equal(5, runner.MemoryWrites.Count);
        Assert.All(runner.MemoryWrites, w => Assert.Equal(l.MemoryStart, w.MemoryStart));
        Assert.Equal(["q1m0", "q1m1"], runner.MemoryWrites[0].Ids);

        var report = r.Events[^1].Memory!;
        Assert.Equal(5, report.Refreshes);
        Assert.Equal(5, report.ProcessHits);
        Assert.Equal(5, report.DiskHits);
        Assert.Equal(["prompt", "prompt", "prompt", "decode", "decode", "decode"], report.Windows.Select(w => w.Phase));
        Assert.Equal([(0, 64), (64, 128), (128, 150), (0, 64), (64, 128), (128, 140)], report.Windows.Select(w => (w.Start, w.End)));
        Assert.Equal(report.Windows[2].Citations, report.Windows[3].Citations); // inherited
        Assert.Equal(["q4m0", "q4m1"], report.Windows[4].Citations.Select(c => c.Id));
        Assert.Equal(2, sched.FreeSlots);
    }

    [Fact]
    public void ThePapersProtocolMakesThreeRetrievals()
    {
        var runner = new FakeRunner(slots: 1, maxTokensPerSlot: 512);
        var sched = new Scheduler(new EngineOptions { MaxNumSeqs = 1, MaxBatchedTokens = 512 }, 1, 512);
        var source = new FakeSource();
        var r = new Recorder();
        sched.Add(Seq(Prompt(128), 128, r, source));
        Run(sched, runner);
        Assert.Equal(3, source.Queries.Count);
        Assert.Equal(3, r.Events[^1].Memory!.Refreshes);
    }

    [Fact]
    public void OtherSequencesKeepSteppingWhileOneWaitsForItsMemories()
    {
        var runner = new FakeRunner(slots: 2, maxTokensPerSlot: 512);
        var sched = new Scheduler(new EngineOptions { MaxNumSeqs = 2, MaxBatchedTokens = 256 }, 2, 512);
        var release = new TaskCompletionSource();
        var source = new FakeSource { Gate = _ => release.Task };
        var a = new Recorder();
        var b = new Recorder();
        sched.Add(Seq(Prompt(10), 5, a, source));
        sched.Add(Seq(Prompt(8), 30, b, null));
        int stepsWhileWaiting = 0;
        for (int i = 0; i < 40; i++)
        {
            var d = sched.Schedule();
            Assert.Empty(d.MemoryWrites);
            if (d.Items.Count == 0) break;
            Assert.DoesNotContain(d.Items, it => it.Sequence.Memory is not null && !it.Prefix);
            sched.Update(d, runner.Step(d.ToBatch()));
            stepsWhileWaiting++;
        }
        Assert.Empty(a.Events);
        Assert.Equal(30, b.Events.Count);   // b finished while a waited
        Assert.True(stepsWhileWaiting >= 30);
        release.SetResult();
        Run(sched, runner);
        Assert.Equal(5, a.Events.Count);
        Assert.Single(source.Queries);
    }

    [Fact]
    public void FewerHitsMaskTheRestAndAFailedRetrievalReadsNoMemory()
    {
        var runner = new FakeRunner(slots: 1, maxTokensPerSlot: 512);
        var sched = new Scheduler(new EngineOptions { MaxNumSeqs = 1, MaxBatchedTokens = 512 }, 1, 512);
        var source = new FakeSource { FailOn = 2, PerQuery = 1 };
        var r = new Recorder();
        sched.Add(Seq(Prompt(100), 4, r, source, Layout(interval: 50)));
        Run(sched, runner);
        Assert.Equal(4, r.Events.Count);
        Assert.Null(r.Events[^1].Error);
        var ctx = runner.Batches.Skip(1).Select(b => b.Sequences[0]).ToList();
        Assert.Equal(8, ctx[0].MemoryValid);     // one hit of 5: 8 of 40 slots
        Assert.Equal(0, ctx[1].MemoryValid);     // the second chunk's retrieval failed
        var report = r.Events[^1].Memory!;
        Assert.Equal(1, report.Failures);
        Assert.Empty(report.Windows[1].Citations);
        Assert.Single(runner.MemoryWrites);
        Assert.Equal(1, sched.RetrievalFailures);
    }

    [Fact]
    public void AHungRetrievalTimesOutAndTheSequenceGoesOnWithoutMemory()
    {
        var runner = new FakeRunner(slots: 1, maxTokensPerSlot: 512);
        var sched = new Scheduler(new EngineOptions { MaxNumSeqs = 1, MaxBatchedTokens = 512, MemoryRetrievalTimeoutMs = 50 }, 1, 512);
        var never = new TaskCompletionSource();
        var source = new FakeSource { Gate = _ => never.Task };
        var r = new Recorder();
        sched.Add(Seq(Prompt(10), 3, r, source));
        Run(sched, runner);
        Assert.Equal(3, r.Events.Count);
        Assert.Equal(1, r.Events[^1].Memory!.Failures);
        Assert.Empty(runner.MemoryWrites);
    }

    private static EngineModelInfo ModelInfo() => new("fake", 512, 400, []) { Memory = new EngineMemoryInfo(PrefixIds, 8, 128, 5, 64, 8) };

    private static async Task<(int[] Tokens, SequenceMemoryReport? Memory)> GenerateAsync(InferenceEngine engine, int[] prompt, int max, EngineMemoryOptions? memory)
    {
        var ids = new List<int>();
        SequenceMemoryReport? report = null;
        await foreach (var e in engine.GenerateAsync(new EngineRequest { PromptTokens = prompt, Sampling = SamplingParams.Greedy with { MaxTokens = max, IgnoreEos = true }, Memory = memory }))
        {
            Assert.Null(e.Error);
            ids.Add(e.TokenId);
            report ??= e.Memory;
        }
        return (ids.ToArray(), report);
    }

    [Fact]
    public async Task EngineReadsMemoryAndMemoryOffIsTokenIdentical()
    {
        var source = new FakeSource();
        var runnerMem = new FakeRunner(slots: 4, maxTokensPerSlot: 512);
        using var withBank = new InferenceEngine(new EngineOptions { MaxNumSeqs = 4, MaxBatchedTokens = 256 }, ModelInfo(), null, runnerMem, _ => source);
        var runnerPlain = new FakeRunner(slots: 4, maxTokensPerSlot: 512);
        using var plain = new InferenceEngine(new EngineOptions { MaxNumSeqs = 4, MaxBatchedTokens = 256 }, new EngineModelInfo("fake", 512, 400, []), null, runnerPlain);
        withBank.Start();
        plain.Start();
        await withBank.Ready.WaitAsync(TimeSpan.FromSeconds(10));
        await plain.Ready.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(withBank.ReadsMemory(null));
        Assert.False(withBank.ReadsMemory(new EngineMemoryOptions(Enabled: false)));

        var prompt = Prompt(100);
        var baseline = await GenerateAsync(plain, prompt, 70, null);
        var off = await GenerateAsync(withBank, prompt, 70, new EngineMemoryOptions(Enabled: false));
        Assert.Equal(baseline.Tokens, off.Tokens);
        Assert.Null(off.Memory);
        Assert.Empty(source.Queries);

        var on = await GenerateAsync(withBank, prompt, 70, new EngineMemoryOptions(MemoriesPerChunk: 2, RetrievalInterval: 32));
        Assert.Equal(70, on.Tokens.Length);
        Assert.NotNull(on.Memory);
        // 100 prompt tokens at 32: 4 chunks; 70 generated: refreshes before tokens 32 and 64.
        Assert.Equal(6, on.Memory!.Refreshes);
        Assert.Equal(6, source.Queries.Count);
        Assert.All(runnerMem.Batches.SelectMany(b => b.Sequences).Where(s => s.MemoryLength > 0), s => Assert.Equal(16, s.MemoryLength));

        await Assert.ThrowsAsync<EngineRequestException>(async () => await GenerateAsync(withBank, prompt, 5, new EngineMemoryOptions(MemoriesPerChunk: 9)));
    }

    [Fact]
    public async Task WorkItemsRunOnTheEngineThreadBetweenSteps()
    {
        var runner = new FakeRunner();
        using var engine = new InferenceEngine(new EngineOptions { MaxNumSeqs = 4, MaxBatchedTokens = 64 }, new EngineModelInfo("fake", 512, 200, []), null, runner);
        engine.Start();
        await engine.Ready.WaitAsync(TimeSpan.FromSeconds(10));
        var name = await engine.RunOnEngineThreadAsync(r => (Thread.CurrentThread.Name, r.NumSlots));
        Assert.Equal(("memory3-engine", 4), name);
        await Assert.ThrowsAsync<InvalidOperationException>(() => engine.RunOnEngineThreadAsync<int>(_ => throw new InvalidOperationException("x")));
    }
}
