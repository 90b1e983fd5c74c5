using System.Diagnostics;

namespace Memory3.Engine.Model.Kernels;

/// <summary>
/// A small persistent pool for bandwidth-bound kernels: <c>ProcessorCount - 1</c> background workers plus the calling
/// thread run one job together. Workers spin for a short while after each job (the next linear layer usually follows
/// within microseconds) and then sleep on a monitor, so an idle engine does not burn a core.
/// A job is a function pointer and a context pointer (usually to a struct on the caller's stack): nothing is allocated
/// per call. <see cref="Run"/> returns only after every participant has finished.
/// Only one caller uses the workers at a time; a concurrent caller runs its job alone on its own thread.
/// The caller never waits for a worker that has not started yet (on a busy machine a worker may be descheduled):
/// once the caller's own share is done it closes the job, and only workers that already joined are waited for.
/// So a job must tolerate any number of participants, including the caller alone (hand work out dynamically).
/// </summary>
internal sealed unsafe class KernelWorkerPool : IDisposable
{
    private static KernelWorkerPool? s_shared;
    private static readonly object s_sharedGate = new();

    /// <summary>The process-wide pool with <c>Environment.ProcessorCount - 1</c> workers (created on first use).</summary>
    public static KernelWorkerPool Shared
    {
        get
        {
            var p = Volatile.Read(ref s_shared);
            if (p is not null) return p;
            lock (s_sharedGate)
            {
                s_shared ??= new KernelWorkerPool(Math.Max(0, Environment.ProcessorCount - 1));
                return s_shared;
            }
        }
    }

    private readonly object _callerGate = new();   // one caller at a time uses the workers
    private readonly object _sleepGate = new();    // sleeping workers wait on this
    private readonly int _workerCount;

    private delegate*<void*, int, void> _job;
    private void* _ctx;
    private int _participants;                      // how many workers take part in the current job
    private int _generation;                        // bumped once per job (Interlocked: full fence)
    private const int ClosedBit = 1 << 30;
    // Workers inside the current job, plus ClosedBit while no job is open. Only ever changed by atomic adds, so a
    // late worker's join-and-leave on a closed job always balances out.
    private int _active = ClosedBit;
    private int _sleepers;                          // workers blocked in Monitor.Wait
    private volatile bool _disposed;

    /// <summary>How long a worker spins for the next job before it sleeps (default 50 µs).</summary>
    public static long SpinTicks { get; set; } = Stopwatch.Frequency / 20_000;

    public KernelWorkerPool(int workerCount)
    {
        _workerCount = workerCount;
        for (int i = 0; i < workerCount; i++)
        {
            var t = new Thread(WorkerLoop) { IsBackground = true, Name = $"memory3-kernel-{i + 1}" };
            t.Start(i + 1);
        }
    }

    /// <summary>Threads that can run a job: the workers plus the caller.</summary>
    public int MaxParallelism => _workerCount + 1;

    /// <summary>
    /// Runs <paramref name="job"/>(ctx, index) on <paramref name="threads"/> threads (index 0 is the caller) and returns
    /// when all are done. The job must split its work itself (e.g. an Interlocked counter in the context).
    /// </summary>
    public void Run(delegate*<void*, int, void> job, void* ctx, int threads)
    {
        int helpers = Math.Min(threads - 1, _workerCount);
        if (helpers <= 0 || !Monitor.TryEnter(_callerGate))
        {
            job(ctx, 0);
            return;
        }
        try
        {
            _job = job;
            _ctx = ctx;
            _participants = helpers;
            Interlocked.Add(ref _active, -ClosedBit);   // open the job; publishes _job/_ctx to workers that join
            Interlocked.Increment(ref _generation);
            if (Volatile.Read(ref _sleepers) > 0)
            {
                lock (_sleepGate) Monitor.PulseAll(_sleepGate);
            }
            job(ctx, 0);
            // Close the job: late workers will skip it. Wait only for those already inside.
            int active = Interlocked.Add(ref _active, ClosedBit);
            if (active != ClosedBit)
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref _active) != ClosedBit) spin.SpinOnce(sleep1Threshold: -1);
            }
        }
        finally
        {
            _job = null;
            _ctx = null;
            Monitor.Exit(_callerGate);
        }
    }

    /// <summary>Ends the workers (the shared pool lives as long as the process). Do not call while a job runs.</summary>
    public void Dispose()
    {
        _disposed = true;
        Interlocked.Increment(ref _generation);
        lock (_sleepGate) Monitor.PulseAll(_sleepGate);
    }

    private void WorkerLoop(object? state)
    {
        int index = (int)state!;
        int seen = 0; // the generation the pool was created with
        while (true)
        {
            long spinUntil = Stopwatch.GetTimestamp() + SpinTicks;
            int iter = 0;
            while (Volatile.Read(ref _generation) == seen)
            {
                if ((++iter & 63) != 0)
                {
                    Thread.SpinWait(8);
                    continue;
                }
                if (Stopwatch.GetTimestamp() < spinUntil) continue;
                lock (_sleepGate)
                {
                    Interlocked.Increment(ref _sleepers);
                    while (Volatile.Read(ref _generation) == seen) Monitor.Wait(_sleepGate);
                    Interlocked.Decrement(ref _sleepers);
                }
            }
            seen = Volatile.Read(ref _generation);
            if (_disposed) return;
            if (index > Volatile.Read(ref _participants)) continue;
            if ((Interlocked.Increment(ref _active) & ClosedBit) == 0)
            {
                try
                {
                    _job(_ctx, index);
                }
                catch (Exception e)
                {
                    // A kernel job must not throw; crash loudly rather than hang the caller.
                    Environment.FailFast("memory3 kernel worker failed", e);
                }
            }
            Interlocked.Decrement(ref _active);
        }
    }
}
