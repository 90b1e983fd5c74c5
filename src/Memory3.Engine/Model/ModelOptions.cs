using static TorchSharp.torch;

namespace Memory3.Engine.Model;

/// <summary>How to load a model: where it runs and in what precision.</summary>
public sealed record ModelOptions
{
    /// <summary>"cpu" (default) or "cuda" / "cuda:N".</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>"float32" or "bfloat16" (the default: bf16 GEMM is ~5x fp32 on this CPU). float16 is refused on CPU.</summary>
    public string DType { get; init; } = "bfloat16";

    public ScalarType ScalarType => ParseDType(DType);

    public static ScalarType ParseDType(string s) => s.ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" or "f16" => ScalarType.Float16,
        _ => throw new ModelLoadException($"dtype '{s}' is not supported (use float32 or bfloat16)"),
    };
}
