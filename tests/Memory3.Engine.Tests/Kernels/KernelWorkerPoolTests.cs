using Memory3.Engine.Model.Kernels;

namespace Memory3.Engine.Tests.Kernels;

public unsafe class KernelWorkerPoolTests
{
    private struct CountJob
    {
        public int Next;      // next item to hand out
        public int Items;
        public int Done;      // items processed, over all participants
        public int* Hits;     // per item: how often it was processed
    }

    private static void RunCount(void* ctx, int worker)
    {
        var job = (CountJob*)ctx;
        int i;
        while ((i = Interlocked.Increment(ref job->Next) - 1) < job->Items)
        {
            Interlocked.Increment(ref job->Hits[i]);
            Interlocked.Increment(ref job->Done);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]   // more workers than cores: late joiners and skipped jobs happen
    public void EveryItemOfEveryJobRunsExactlyOnce(int workers)
    {
        using var pool = new KernelWorkerPool(workers);
        const int items = 37;
        int* hits = stackalloc int[items];
        for (int rep = 0; rep < 5000; rep++)
        {
            for (int i = 0; i < items; i++) hits[i] = 0;
            var job = new CountJob { Items = items, Hits = hits };
            pool.Run(&RunCount, &job, workers + 1);
            Assert.Equal(items, job.Done);
            for (int i = 0; i < items; i++) Assert.Equal(1, hits[i]);
        }
    }
}
