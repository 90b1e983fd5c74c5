using Memory3.Engine.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Model;

/// <summary>
/// Chooses how a linear layer runs. Decode steps with few rows are bandwidth-bound: they go to a SIMD bf16 kernel
/// (<see cref="Bf16Gemv"/>) that reads the weights once at memory speed. Many rows go to libtorch's GEMM.
/// </summary>
public static class LinearDispatch
{
    /// <summary>Row count up to which the bandwidth-bound kernel is used (0 disables it).</summary>
    public static int SmallRowThreshold { get; set; } = 8;

    public static bool UsesKernel(long rows, Tensor weight, Tensor x) =>
        rows <= SmallRowThreshold && weight.dtype == ScalarType.BFloat16 && weight.device_type == DeviceType.CPU &&
        (x.dtype == ScalarType.BFloat16 || x.dtype == ScalarType.Float32) && x.dim() == 2;

    public static Tensor Apply(Tensor x, Tensor weight, Tensor? bias)
    {
        long rows = x.shape[0];
        if (!UsesKernel(rows, weight, x)) return nn.functional.linear(x, weight, bias);
        using var xc = x.contiguous();
        var y = empty([rows, weight.shape[0]], x.dtype, x.device);
        Bf16Gemv.Linear(xc, weight, bias, y);
        return y;
    }

    /// <summary>Which path a decode step of <paramref name="rows"/> rows takes, for benchmark tables.</summary>
    public static string Describe(int rows) => rows <= SmallRowThreshold ? "simd bf16 kernel" : "libtorch GEMM";
}
