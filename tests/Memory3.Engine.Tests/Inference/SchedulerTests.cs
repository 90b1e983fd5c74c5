using Memory3.Engine.Inference;
using Memory3.Engine.Model.Sampling;

namespace Memory3.Engine.Tests.Inference;

public class SchedulerTests
{
    private sealed class Recorder : ISequenceObserver
    {
        public List<TokenEvent> Events { get; } = [];
        public int Scheduled;
        public void OnScheduled(Sequence seq) => Scheduled++;
        public void OnEvent(Sequence seq, TokenEvent e) => Events.Add(e);
    }

    private static Sequence Seq(int promptLen, int maxNew, Recorder r, int first = 1) =>
        new(1, 0, Enumerable.Range(first, promptLen).Select(i => 10 + i % 50).ToArray(), SamplingParams.Greedy with { MaxTokens = maxNew }, 512, maxNew, null, [], r);

    private static (Scheduler, FakeRunner) Make(int maxSeqs = 4, int budget = 16, int slots = 4, int chunk = 0)
    {
        var opts = new EngineOptions { MaxNumSeqs = maxSeqs, MaxBatchedTokens = budget, MaxPrefillChunk = chunk };
        return (new Scheduler(opts, slots, 256), new FakeRunner(slots: slots));
    }

    private static void Run(Scheduler s, FakeRunner runner, int maxSteps = 1000)
    {
        for (int i = 0; i < maxSteps && s.HasWork; i++)
        {
            var d = s.Schedule();
            if (d.IsEmpty) break;
            s.Update(d, runner.Step(d.ToBatch()));
        }
    }

    [Fact]
    public void BudgetsAreRespectedEveryStep()
    {
        var (s, runner) = Make(maxSeqs: 3, budget: 10, slots: 4);
        var r = new Recorder();
        for (int i = 0; i < 6; i++) s.Add(Seq(7, 5, r));
        Run(s, runner);
        Assert.All(runner.Batches, b => Assert.True(b.TotalTokens <= 10));
        Assert.All(runner.Batches, b => Assert.True(b.Sequences.Length <= 3));
        Assert.Equal(6 * 5, r.Events.Count);
        Assert.Equal(4, s.FreeSlots);
    }

    [Fact]
    public void LongPromptIsPrefilledInChunksAndMixesWithDecode()
    {
        var (s, runner) = Make(maxSeqs: 4, budget: 8, slots: 4);
        var a = new Recorder();
        var b = new Recorder();
        s.Add(Seq(3, 20, a));
        Run(s, runner, maxSteps: 2); // a prefilled and decoding
        s.Add(Seq(30, 2, b));
        var d = s.Schedule();
        Assert.Equal(2, d.Items.Count);
        Assert.Equal(1, d.Items[0].NumTokens);          // a's decode token first
        Assert.Equal(7, d.Items[1].NumTokens);          // b's first chunk takes the rest of the budget
        Assert.True(d.Items[1].IsPrefill && !d.Items[1].Samples);
        s.Update(d, runner.Step(d.ToBatch()));
        Run(s, runner);
        Assert.Equal(2, b.Events.Count);
        Assert.Equal(20, a.Events.Count);
    }

    [Fact]
    public void PrefillChunkCapSplitsPrompt()
    {
        var (s, runner) = Make(budget: 64, chunk: 5);
        var r = new Recorder();
        s.Add(Seq(12, 1, r));
        Run(s, runner);
        Assert.Equal([5, 5, 2], runner.Batches.Select(b => b.TotalTokens).ToArray());
        Assert.Single(r.Events);
    }

    [Fact]
    public void ChunkedPrefillGivesTheSameTokensAsOneChunk()
    {
        int[] Generate(int budget)
        {
            var (s, runner) = Make(budget: budget);
            var r = new Recorder();
            s.Add(Seq(40, 10, r));
            Run(s, runner);
            return r.Events.Select(e => e.TokenId).ToArray();
        }
        Assert.Equal(Generate(64), Generate(4));
    }

    [Fact]
    public void WaitsForSlotsAndMaxNumSeqs()
    {
        var (s, runner) = Make(maxSeqs: 2, budget: 64, slots: 2);
        var r = new Recorder();
        for (int i = 0; i < 3; i++) s.Add(Seq(4, 3, r));
        var d = s.Schedule();
        Assert.Equal(2, d.Items.Count);
        Assert.Equal(1, s.WaitingCount);
        Assert.Equal(0, s.FreeSlots);
        s.Update(d, runner.Step(d.ToBatch()));
        Run(s, runner);
        Assert.Equal(9, r.Events.Count);
        Assert.Equal(2, s.FreeSlots);
    }

    [Fact]
    public void AbortFreesTheSlotAtOnce()
    {
        var (s, runner) = Make(slots: 2);
        var r = new Recorder();
        var a = Seq(4, 50, r);
        s.Add(a);
        var d = s.Schedule();
        s.Update(d, runner.Step(d.ToBatch()));
        Assert.Equal(1, s.FreeSlots);
        Assert.True(s.Abort(a));
        Assert.Equal(2, s.FreeSlots);
        Assert.False(s.HasWork);
        Assert.True(s.Schedule().IsEmpty);
    }

    [Fact]
    public void FailedStepFailsOnlyItsSequences()
    {
        var (s, runner) = Make(maxSeqs: 1, budget: 16, slots: 1);
        var a = new Recorder();
        var b = new Recorder();
        s.Add(Seq(4, 3, a));
        s.Add(Seq(4, 3, b));
        var d = s.Schedule();
        Assert.Single(d.Items);
        s.Fail(d, "boom");
        Assert.True(a.Events.Single().IsError);
        Run(s, runner);
        Assert.Equal(3, b.Events.Count);
        Assert.All(b.Events, e => Assert.False(e.IsError));
        Assert.Equal(1, s.FreeSlots);
    }

    [Fact]
    public void StopStringsAndEosFinishTheSequence()
    {
        var (s, runner) = Make();
        var r = new Recorder();
        int first = FakeRunner.Next(13, 3);
        var seq = new Sequence(1, 0, [10, 11, 12, 13], SamplingParams.Greedy with { MaxTokens = 10 }, 512, 10, null, [first], r);
        s.Add(seq);
        Run(s, runner);
        Assert.Single(r.Events);
        Assert.Equal(FinishReason.Stop, r.Events[0].Finish);
        Assert.Equal(4, s.FreeSlots);
    }

    [Fact]
    public async Task EngineIsolatesAFailingRequestAndCountsTheStep()
    {
        var runner = new FakeRunner(slots: 4) { DelayMs = 2 };
        using var engine = new InferenceEngine(new EngineOptions { MaxNumSeqs = 4, MaxBatchedTokens = 64 }, new EngineModelInfo("fake", 512, 256, []), null, runner);
        engine.Start();
        await engine.Ready;
        async Task<List<TokenEvent>> Collect(int[] prompt, int max)
        {
            var list = new List<TokenEvent>();
            await foreach (var e in engine.GenerateAsync(new EngineRequest { PromptTokens = prompt, Sampling = SamplingParams.Greedy with { MaxTokens = max } })) list.Add(e);
            return list;
        }
        var good = Collect([1, 2, 3], 40);
        var bad = Collect([1, FakeRunner.PoisonToken, 3], 5);
        var good2 = Collect([4, 5, 6], 40);
        var results = await Task.WhenAll(good, bad, good2);
        Assert.Equal(40, results[0].Count);
        Assert.Equal(40, results[2].Count);
        Assert.True(results[1].Single().IsError);
        Assert.True(engine.GetStats().FailedSteps >= 1);
        var stats = engine.GetStats();
        Assert.Equal(stats.TotalSlots, stats.FreeSlots);
    }

    [Fact]
    public async Task EngineOutputEqualsAloneUnderConcurrencyAndCancelFreesSlot()
    {
        var runner = new FakeRunner(slots: 4) { DelayMs = 1 };
        using var engine = new InferenceEngine(new EngineOptions { MaxNumSeqs = 4, MaxBatchedTokens = 8, MaxQueue = 16 }, new EngineModelInfo("fake", 512, 256, []), null, runner);
        engine.Start();
        await engine.Ready;
        async Task<int[]> Tokens(int[] prompt, CancellationToken ct = default)
        {
            var list = new List<int>();
            await foreach (var e in engine.GenerateAsync(new EngineRequest { PromptTokens = prompt, Sampling = SamplingParams.Greedy with { MaxTokens = 12 } }, ct)) list.Add(e.TokenId);
            return [.. list];
        }
        var prompts = Enumerable.Range(0, 8).Select(i => Enumerable.Range(20 + i, 5 + i).ToArray()).ToArray();
        var alone = new List<int[]>();
        foreach (var p in prompts) alone.Add(await Tokens(p));
        var together = await Task.WhenAll(prompts.Select(p => Tokens(p)));
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(alone[i], together[i]);

        using var cts = new CancellationTokenSource();
        await using (var e = engine.GenerateAsync(new EngineRequest { PromptTokens = [1, 2], Sampling = SamplingParams.Greedy with { MaxTokens = 250 } }, cts.Token).GetAsyncEnumerator())
        {
            Assert.True(await e.MoveNextAsync());
            cts.Cancel();
        }
        for (int i = 0; i < 1000 && engine.GetStats() is var s && (s.Running > 0 || s.FreeSlots != s.TotalSlots); i++) await Task.Delay(10);
        var st = engine.GetStats();
        Assert.Equal(0, st.Running);
        Assert.Equal(st.TotalSlots, st.FreeSlots);
        Assert.True(st.AbortedSequences >= 1);
    }
}
