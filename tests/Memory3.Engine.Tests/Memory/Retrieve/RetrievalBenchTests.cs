using Memory3.Engine.Memory.Retrieve;
using Xunit.Abstractions;

namespace Memory3.Engine.Tests.Memory.Retrieve;

public class RetrievalBenchTests(ITestOutputHelper output)
{
    /// <summary>A small smoke run. M3_RETRIEVAL_BENCH=N runs the full bench (with MiniLM) on N references instead.</summary>
    [Fact]
    public void Retrieval_bench_runs()
    {
        var sw = new StringWriter();
        var full = Environment.GetEnvironmentVariable("M3_RETRIEVAL_BENCH");
        if (int.TryParse(full, out var n)) RetrievalBench.Run(sw, n);
        else RetrievalBench.Run(sw, 400, withMiniLm: false, queries: 50);
        output.WriteLine(sw.ToString());
        Assert.Contains("search fused", sw.ToString());
        Assert.Contains("refs/s", sw.ToString());
    }
}
