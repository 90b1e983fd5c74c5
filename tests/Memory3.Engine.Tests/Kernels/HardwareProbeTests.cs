using Memory3.Engine.Model.Kernels;

namespace Memory3.Engine.Tests.Kernels;

public class HardwareProbeTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(0)]
    public void ReadBandwidthIsPositiveAndFinite(int threads)
    {
        double gbs = HardwareProbe.MeasureReadBandwidthGBs(16L << 20, threads, 3);
        Assert.True(double.IsFinite(gbs) && gbs > 0, $"got {gbs}");
    }

    [Fact]
    public void GemmThroughputIsPositiveAndFinite()
    {
        double bf16 = HardwareProbe.MeasureBf16GemmGflops(128, 3);
        double fp32 = HardwareProbe.MeasureFp32GemmGflops(128, 3);
        Assert.True(double.IsFinite(bf16) && bf16 > 0, $"bf16 {bf16}");
        Assert.True(double.IsFinite(fp32) && fp32 > 0, $"fp32 {fp32}");
    }

    [Fact]
    public void MedianOfEvenAndOddCounts()
    {
        Assert.Equal(2.0, HardwareProbe.Median(new[] { 3.0, 1.0, 2.0 }));
        Assert.Equal(2.5, HardwareProbe.Median(new[] { 4.0, 1.0, 2.0, 3.0 }));
    }

    [Fact]
    public void Llama06BShapesWeigh110GB()
    {
        long bytes = 0;
        foreach (var (o, i) in KernelBench.Llama06BShapes()) bytes += 2L * o * i;
        Assert.Equal(141, KernelBench.Llama06BShapes().Count);
        Assert.InRange(bytes / 1e9, 1.10, 1.11);
    }
}
