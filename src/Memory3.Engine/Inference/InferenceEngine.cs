using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Memory3.Engine.Memory;
using Memory3.Engine.Telemetry;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Inference;

/// <summary>
/// The continuous-batching engine. One dedicated thread owns the model runner (weights, KV pool, every tensor) and
/// the <see cref="IScheduler"/>; requests arrive through a bounded channel, aborts through a queue; each step runs the
/// scheduler's decision, samples and emits tokens into each request's own channel. A step that throws fails only its
/// own sequences and the loop goes on.
/// </summary>
public sealed class InferenceEngine : IInferenceEngine, IDisposable
{
    private readonly EngineOptions _options;
    private readonly ITokenizer? _tokenizer;
    private readonly IModelRunnerFactory _factory;
    private readonly Channel<RequestState> _queue;
    private readonly ConcurrentQueue<RequestState> _aborts = new();
    private readonly AutoResetEvent _wake = new(false);
    private readonly TaskCompletionSource _readyTcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly IDisposable _gauges;
    private readonly IReadOnlyList<int> _eos;
    private readonly Func<IModelRunner, IMemorySource?>? _memoryFactory;
    private readonly ConcurrentQueue<Action<IModelRunner>> _work = new();
    private volatile IMemorySource? _memory;
    private Thread? _thread;
    private Scheduler? _scheduler;
    private IModelRunner? _runner;
    private volatile bool _ready, _stopping;
    private volatile string? _loadError;
    private int _admittedNotRunning; // requests admitted whose sequences have not started yet (the queue the 429 guards)
    private long _nextId;
    private int _statRunning, _statWaiting, _statFree, _statTotal;
    private long _steps, _failedSteps, _aborted, _finished;

    /// <param name="memoryFactory">Called once on the engine thread after the model loads (before the engine is ready):
    /// the memory source for sequences that read memory (the server's bank), or null. Throwing fails the load.</param>
    public InferenceEngine(EngineOptions options, EngineModelInfo model, ITokenizer? tokenizer, IModelRunnerFactory factory,
        Func<IModelRunner, IMemorySource?>? memoryFactory = null)
    {
        var problems = options.Validate();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(options));
        if (model.MaxModelLen < 2) throw new ArgumentException("the model's context must hold at least 2 tokens", nameof(model));
        _options = options;
        Model = model;
        _tokenizer = tokenizer;
        _factory = factory;
        _memoryFactory = model.Memory is null ? null : memoryFactory;
        var eos = new List<int>(model.EosTokenIds);
        if (tokenizer is not null) foreach (var e in tokenizer.EosTokenIds) if (!eos.Contains(e)) eos.Add(e);
        _eos = eos;
        _queue = Channel.CreateBounded<RequestState>(new BoundedChannelOptions(options.MaxQueue) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _gauges = EngineMetrics.Register(this, () => (Volatile.Read(ref _statRunning), Volatile.Read(ref _statWaiting), Volatile.Read(ref _statFree)));
    }

    public EngineModelInfo Model { get; }
    public EngineOptions Options => _options;
    public bool IsReady => _ready && !_stopping;
    public string? LoadError => _loadError;
    /// <summary>Completes when the model is loaded; faults when loading failed.</summary>
    public Task Ready => _readyTcs.Task;
    /// <summary>Raised on the engine thread when a step throws (after its sequences are failed).</summary>
    public event Action<Exception>? StepFailed;
    /// <summary>The memory source sequences read (null: memory is off for every request).</summary>
    public IMemorySource? MemorySource => _memory;
    /// <summary>Whether a request with these options reads memory (model with memory keys, a source, enabled).</summary>
    public bool ReadsMemory(EngineMemoryOptions? o) => _memory is not null && Model.Memory is not null && (o?.Enabled ?? true);

    /// <summary>
    /// Runs <paramref name="work"/> on the engine thread between two steps (work that uses the model's tensors, such as
    /// encoding memories). Keep each item short: generation waits while it runs.
    /// </summary>
    public Task<T> RunOnEngineThreadAsync<T>(Func<IModelRunner, T> work, CancellationToken ct = default)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_stopping) { tcs.SetException(new EngineNotReadyException("the server is shutting down", _options.RetryAfterSeconds)); return tcs.Task; }
        _work.Enqueue(runner =>
        {
            if (ct.IsCancellationRequested) { tcs.TrySetCanceled(ct); return; }
            try { tcs.TrySetResult(work(runner)); }
            catch (Exception e) { tcs.TrySetException(e); }
        });
        _wake.Set();
        return tcs.Task;
    }

    public EngineStats GetStats() => new(
        Volatile.Read(ref _statRunning),
        Volatile.Read(ref _statWaiting) + _queue.Reader.Count,
        Volatile.Read(ref _statFree), Volatile.Read(ref _statTotal),
        Interlocked.Read(ref _steps), Interlocked.Read(ref _failedSteps), Interlocked.Read(ref _aborted), Interlocked.Read(ref _finished));

    /// <summary>Starts the engine thread, which loads the model and then steps.</summary>
    public void Start()
    {
        if (_thread is not null) throw new InvalidOperationException("already started");
        _thread = new Thread(Run) { Name = "memory3-engine", IsBackground = true };
        _thread.Start();
    }

    public IAsyncEnumerable<TokenEvent> GenerateAsync(EngineRequest req, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(req);
        if (!IsReady)
            throw new EngineNotReadyException(_loadError is { } err ? $"the model failed to load: {err}" : _stopping ? "the server is shutting down" : "the model is loading", _options.RetryAfterSeconds);
        Validate(req);

        int w;
        do
        {
            w = Volatile.Read(ref _admittedNotRunning);
            if (w >= _options.MaxQueue)
            {
                EngineMetrics.RequestsFinished.Add(1, new KeyValuePair<string, object?>("reason", "rejected"));
                throw new EngineOverloadedException(_options.RetryAfterSeconds);
            }
        } while (Interlocked.CompareExchange(ref _admittedNotRunning, w + 1, w) != w);

        var st = new RequestState(this, Interlocked.Increment(ref _nextId), req);
        if (!_queue.Writer.TryWrite(st))
        {
            Interlocked.Decrement(ref _admittedNotRunning);
            st.EndQueueSpan();
            throw new EngineOverloadedException(_options.RetryAfterSeconds);
        }
        if (ct.CanBeCanceled) st.Registration = ct.Register(static s => ((RequestState)s!).RequestAbort(), st);
        _wake.Set();
        return ReadAsync(st, ct);
    }

    private void Validate(EngineRequest req)
    {
        var p = req.PromptTokens ?? throw new EngineRequestException("prompt", "the prompt is missing");
        if (p.Length == 0) throw new EngineRequestException("prompt", "the prompt is empty");
        if (req.N < 1 || req.N > _options.MaxN) throw new EngineRequestException("n", $"n must be between 1 and {_options.MaxN}, got {req.N}");
        foreach (var t in p)
            if ((uint)t >= (uint)Model.VocabSize) throw new EngineRequestException("prompt", $"token id {t} is outside the vocabulary [0, {Model.VocabSize})");
        req.Sampling.Validate(Model.VocabSize);
        if (p.Length >= Model.MaxModelLen)
            throw new EngineRequestException("prompt", $"This model's maximum context length is {Model.MaxModelLen} tokens. However, your prompt has {p.Length} tokens.", "context_length_exceeded");
        if (req.Memory is { } mo && Model.Memory is { } mi)
        {
            if (mo.MemoriesPerChunk is int k && (k < 1 || k > mi.MaxMemoriesPerChunk))
                throw new EngineRequestException("memory.memories_per_chunk", $"memory.memories_per_chunk must be between 1 and {mi.MaxMemoriesPerChunk}, got {k}");
            if (mo.RetrievalInterval is int r && r < 1)
                throw new EngineRequestException("memory.retrieval_interval", $"memory.retrieval_interval must be at least 1, got {r}");
        }
        if (p.Length + req.Sampling.MaxTokens > Model.MaxModelLen)
            throw new EngineRequestException("max_tokens",
                $"This model's maximum context length is {Model.MaxModelLen} tokens. However, you requested {p.Length + req.Sampling.MaxTokens} tokens ({p.Length} in the prompt, {req.Sampling.MaxTokens} for the completion). Please reduce the prompt or max_tokens.",
                "context_length_exceeded");
    }

    private static async IAsyncEnumerable<TokenEvent> ReadAsync(RequestState st, CancellationToken admitCt, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var reg = ct.CanBeCanceled && ct != admitCt ? ct.Register(static s => ((RequestState)s!).RequestAbort(), st) : default;
        try
        {
            var reader = st.Out.Reader;
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
                while (reader.TryRead(out var e)) yield return e;
            admitCt.ThrowIfCancellationRequested();
        }
        finally
        {
            reg.Dispose();
            st.Registration.Dispose();
            if (!st.IsCompleted) st.RequestAbort();
        }
    }

    // ------------------------------------------------------------------ engine thread

    private void Run()
    {
        try
        {
            // A memory model's slots also hold the reference prefix and the memory region.
            int slotTokens = Model.MaxModelLen + (_memoryFactory is not null ? Model.Memory!.SlotOverhead : 0);
            _runner = _factory.Create(_options, slotTokens);
            if (_runner.VocabSize != Model.VocabSize)
                throw new InvalidOperationException($"the runner's vocabulary ({_runner.VocabSize}) differs from the model's ({Model.VocabSize})");
            _memory = _memoryFactory?.Invoke(_runner);
            Func<IReadOnlyList<int>, string>? decode = _tokenizer is { } tok ? ids => tok.Decode(ids.ToArray(), skipSpecialTokens: true) : null;
            _scheduler = new Scheduler(_options, _runner.NumSlots, _runner.MaxTokensPerSlot, decode, () => _wake.Set());
        }
        catch (Exception e)
        {
            _loadError = e.Message;
            _readyTcs.TrySetException(e);
            DrainOnStop("the model failed to load");
            return;
        }
        Volatile.Write(ref _statTotal, _scheduler.TotalSlots);
        Volatile.Write(ref _statFree, _scheduler.FreeSlots);
        _ready = true;
        _readyTcs.TrySetResult();

        var sched = _scheduler;
        while (!_stopping)
        {
            DrainControl(sched);
            Publish(sched);
            // One work item (e.g. an ingestion batch) between steps, so that neither starves the other.
            if (_work.TryDequeue(out var item)) RunWork(item);
            if (!sched.HasWork)
            {
                if (!_work.IsEmpty) continue;
                _wake.WaitOne(1000);
                continue;
            }
            var decision = sched.Schedule();
            if (decision.IsEmpty)
            {
                _wake.WaitOne(5);
                continue;
            }
            Step(sched, decision);
            Publish(sched);
        }
        sched.FailAll("the server is shutting down");
        DrainOnStop("the server is shutting down");
        while (_work.TryDequeue(out var left)) RunWork(left);
        Publish(sched);
        (_memory as IDisposable)?.Dispose();
        _runner.Dispose();
    }

    private void RunWork(Action<IModelRunner> item)
    {
        try { item(_runner!); }
        catch (Exception e) { try { StepFailed?.Invoke(e); } catch { /* a listener must not stop the loop */ } }
    }

    private void DrainControl(Scheduler sched)
    {
        while (_queue.Reader.TryRead(out var st))
        {
            if (st.AbortRequested) { st.OnAborted(); continue; }
            try
            {
                var seqs = new Sequence[st.Request.N];
                for (int i = 0; i < seqs.Length; i++)
                {
                    var p = st.Request.Sampling;
                    if (p.Seed is ulong seed && i > 0) p = p with { Seed = unchecked(seed + (ulong)i) };
                    seqs[i] = new Sequence(st.Id, i, st.Request.PromptTokens, p, Model.VocabSize, p.MaxTokens, _tokenizer, _eos, st);
                    if (ReadsMemory(st.Request.Memory) && _memory is { } source)
                    {
                        var mi = Model.Memory!;
                        var mo = st.Request.Memory;
                        var layout = new MemoryLayout(mi.Prefix, mo?.MemoriesPerChunk ?? mi.MemoriesPerChunk, mi.TokensPerHead,
                            mo?.RetrievalInterval ?? mi.RetrievalInterval, mi.ReferenceMaxTokens);
                        seqs[i].Memory = new SequenceMemory(layout, source, mo?.Namespaces);
                    }
                }
                st.Sequences = seqs;
                foreach (var s in seqs) sched.Add(s);
            }
            catch (Exception e)
            {
                if (st.Sequences is { } made) foreach (var s in made) if (s is not null) sched.Abort(s);
                st.FailAll($"the request could not be started: {e.Message}");
            }
        }
        while (_aborts.TryDequeue(out var st))
        {
            if (st.Sequences is null) continue; // still queued: dropped when drained
            foreach (var s in st.Sequences)
                if (sched.Abort(s)) Interlocked.Increment(ref _aborted);
            st.OnAborted();
        }
    }

    private void Step(Scheduler sched, SchedulerDecision decision)
    {
        // Memories that arrived go into their slots before the forward that reads them. A failed copy leaves the
        // region masked (the sequence reads no memory in that window) rather than failing the request.
        foreach (var w in decision.MemoryWrites)
        {
            if (w.Sequence.IsFinished || w.Sequence.Slot != w.Slot) continue;
            try { _runner!.WriteMemories(w.Slot, w.MemoryStart, w.Memories); EngineMetrics.MemoryRefreshes.Add(1); }
            catch (Exception e)
            {
                if (w.Sequence.Memory is { } m) { m.MemoryValid = 0; m.Failures++; }
                EngineMetrics.RetrievalFailures.Add(1);
                try { StepFailed?.Invoke(e); } catch { /* a listener must not stop the loop */ }
            }
        }
        if (decision.Items.Count == 0) return;
        long t0 = Stopwatch.GetTimestamp();
        int tokens = decision.TotalTokens, prefill = 0;
        for (int i = 0; i < decision.Items.Count; i++) if (decision.Items[i].IsPrefill) prefill++;
        string phase = prefill == 0 ? "decode" : prefill == decision.Items.Count ? "prefill" : "mixed";
        Activity? span = null;
        if (EngineTelemetry.ActivitySource.HasListeners())
        {
            var links = new List<ActivityLink>(decision.Items.Count);
            RequestState? last = null;
            for (int i = 0; i < decision.Items.Count; i++)
                if (decision.Items[i].Sequence.Observer is RequestState rs && rs != last && rs.PhaseContext is { } c) { links.Add(new ActivityLink(c)); last = rs; }
            span = RequestState.StartDetached("engine.step", default, links);
            span?.SetTag("memory3.batch.tokens", tokens);
            span?.SetTag("memory3.batch.size", decision.Items.Count);
            span?.SetTag("memory3.step.phase", phase);
        }
        StepOutput output;
        try
        {
            output = _runner!.Step(decision.ToBatch());
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _failedSteps);
            EngineMetrics.StepFailures.Add(1);
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            RequestState.StopDetached(span);
            try { StepFailed?.Invoke(e); } catch { /* a listener must not stop the loop */ }
            Isolate(sched, decision, e);
            return;
        }
        sched.Update(decision, output);
        Interlocked.Increment(ref _steps);
        var phaseTag = new KeyValuePair<string, object?>("phase", phase);
        EngineMetrics.StepDuration.Record(Stopwatch.GetElapsedTime(t0).TotalSeconds, phaseTag);
        EngineMetrics.BatchTokens.Record(tokens);
        EngineMetrics.BatchSize.Record(decision.Items.Count);
        RequestState.StopDetached(span);
    }

    /// <summary>
    /// A batched step threw: run each of its sequences alone so that only those that fail on their own are failed.
    /// Safe because a step only writes the KV entries it recomputes (same tokens, same positions).
    /// </summary>
    private void Isolate(Scheduler sched, SchedulerDecision decision, Exception first)
    {
        if (decision.Items.Count == 1)
        {
            sched.Fail(decision, $"the engine step failed: {first.Message}");
            return;
        }
        for (int i = 0; i < decision.Items.Count; i++)
        {
            var single = new SchedulerDecision([decision.Items[i]]);
            if (single.Items[0].Sequence.IsFinished) continue;
            try
            {
                var output = _runner!.Step(single.ToBatch());
                sched.Update(single, output);
            }
            catch (Exception e)
            {
                sched.Fail(single, $"the engine step failed: {e.Message}");
            }
        }
    }

    private void Publish(Scheduler sched)
    {
        Volatile.Write(ref _statRunning, sched.RunningCount);
        Volatile.Write(ref _statWaiting, sched.WaitingCount);
        Volatile.Write(ref _statFree, sched.FreeSlots);
    }

    private void DrainOnStop(string message)
    {
        _queue.Writer.TryComplete();
        while (_queue.Reader.TryRead(out var st)) st.FailAll(message);
    }

    internal void EnqueueAbort(RequestState st)
    {
        _aborts.Enqueue(st);
        _wake.Set();
    }

    internal void OnRequestStarted() => Interlocked.Decrement(ref _admittedNotRunning);
    internal void OnRequestFinished() => Interlocked.Increment(ref _finished);

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Set();
        if (_thread is { IsAlive: true } t && t != Thread.CurrentThread) t.Join(TimeSpan.FromSeconds(30));
        else if (_thread is null) DrainOnStop("the server is shutting down");
        _gauges.Dispose();
    }

    /// <summary>A request's shared state: its output channel, timing, spans and the sequences of its choices.</summary>
    internal sealed class RequestState : ISequenceObserver
    {
        private readonly InferenceEngine _engine;
        private readonly long _admitted = Stopwatch.GetTimestamp();
        private readonly ActivityContext _parent;
        private Activity? _queueSpan, _prefillSpan, _decodeSpan;
        private long[] _lastToken = [];
        private int _remaining;
        private bool _started, _firstToken;
        private int _abortRequested, _completed;

        public RequestState(InferenceEngine engine, long id, EngineRequest req)
        {
            _engine = engine;
            Id = id;
            Request = req;
            _remaining = req.N;
            Out = Channel.CreateUnbounded<TokenEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
            if (EngineTelemetry.ActivitySource.HasListeners())
            {
                _parent = Activity.Current?.Context ?? default;
                _queueSpan = StartDetached("queue", _parent, null);
                _queueSpan?.SetTag("memory3.request.id", req.Id ?? id.ToString());
                _queueSpan?.SetTag("memory3.request.prompt_tokens", req.PromptTokens.Length);
                _queueSpan?.SetTag("memory3.request.n", req.N);
            }
        }

        public long Id { get; }
        public EngineRequest Request { get; }
        public Channel<TokenEvent> Out { get; }
        public Sequence[]? Sequences { get; set; }
        public CancellationTokenRegistration Registration { get; set; }
        public bool AbortRequested => Volatile.Read(ref _abortRequested) != 0;
        public bool IsCompleted => Volatile.Read(ref _completed) != 0;
        public ActivityContext? PhaseContext => (_decodeSpan ?? _prefillSpan)?.Context;

        public void RequestAbort()
        {
            if (IsCompleted || Interlocked.Exchange(ref _abortRequested, 1) != 0) return;
            _engine.EnqueueAbort(this);
        }

        public void OnScheduled(Sequence seq)
        {
            EngineMetrics.PromptTokens.Add(seq.PromptLength);
            if (_started) return;
            _started = true;
            _lastToken = new long[Request.N];
            _engine.OnRequestStarted();
            EngineMetrics.QueueTime.Record(Stopwatch.GetElapsedTime(_admitted).TotalSeconds);
            EndQueueSpan();
            if (_queueSpan is not null || EngineTelemetry.ActivitySource.HasListeners()) _prefillSpan = StartDetached("prefill", _parent, null);
        }

        public void OnEvent(Sequence seq, TokenEvent e)
        {
            if (IsCompleted) return;
            long now = Stopwatch.GetTimestamp();
            if (e.IsError)
            {
                Out.Writer.TryWrite(e);
                // One failed choice fails the request: the others are aborted.
                if (Sequences is { Length: > 1 }) RequestAbort();
                Complete("error", ActivityStatusCode.Error, e.Error);
                return;
            }
            EngineMetrics.GeneratedTokens.Add(1);
            if (!_firstToken)
            {
                _firstToken = true;
                EngineMetrics.TimeToFirstToken.Record(Stopwatch.GetElapsedTime(_admitted, now).TotalSeconds);
                StopDetached(_prefillSpan);
                if (_prefillSpan is not null) _decodeSpan = StartDetached("decode", _parent, null);
            }
            if ((uint)e.Index < (uint)_lastToken.Length)
            {
                if (_lastToken[e.Index] != 0) EngineMetrics.InterTokenLatency.Record(Stopwatch.GetElapsedTime(_lastToken[e.Index], now).TotalSeconds);
                _lastToken[e.Index] = now;
            }
            Out.Writer.TryWrite(e);
            if (e.Finish is { } f && --_remaining == 0)
            {
                EngineMetrics.EndToEndLatency.Record(Stopwatch.GetElapsedTime(_admitted, now).TotalSeconds);
                Complete(f == FinishReason.Stop ? "stop" : "length", ActivityStatusCode.Unset, null);
            }
        }

        public void OnAborted()
        {
            if (IsCompleted) return;
            if (!_started) { _started = true; _engine.OnRequestStarted(); }
            Complete("abort", ActivityStatusCode.Unset, null);
        }

        public void FailAll(string message)
        {
            if (IsCompleted) return;
            if (!_started) { _started = true; _engine.OnRequestStarted(); }
            for (int i = 0; i < Request.N; i++) Out.Writer.TryWrite(new TokenEvent(i, -1, "", float.NaN, null, null, message));
            Complete("error", ActivityStatusCode.Error, message);
        }

        private void Complete(string reason, ActivityStatusCode status, string? description)
        {
            if (Interlocked.Exchange(ref _completed, 1) != 0) return;
            EngineMetrics.RequestsFinished.Add(1, new KeyValuePair<string, object?>("reason", reason));
            _engine.OnRequestFinished();
            EndQueueSpan();
            foreach (var span in new[] { _prefillSpan, _decodeSpan })
            {
                if (span is null || span.IsStopped) continue;
                if (status != ActivityStatusCode.Unset) span.SetStatus(status, description);
                span.SetTag("memory3.finish_reason", reason);
                StopDetached(span);
            }
            Out.Writer.TryComplete();
        }

        public void EndQueueSpan()
        {
            if (_queueSpan is { IsStopped: false }) StopDetached(_queueSpan);
        }

        /// <summary>Starts a span without making it current on this thread (the engine thread interleaves many).</summary>
        internal static Activity? StartDetached(string name, ActivityContext parent, IEnumerable<ActivityLink>? links)
        {
            var prev = Activity.Current;
            var a = EngineTelemetry.ActivitySource.StartActivity(name, ActivityKind.Internal, parent, null, links);
            Activity.Current = prev;
            return a;
        }

        internal static void StopDetached(Activity? a)
        {
            if (a is null || a.IsStopped) return;
            var prev = Activity.Current;
            a.Stop();
            Activity.Current = prev == a ? null : prev;
        }
    }
}
