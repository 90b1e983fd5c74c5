using System.Runtime.CompilerServices;

namespace Memory3.Engine.Model.Kernels;

/// <summary>bfloat16 bit conversions (.NET 10 has no BFloat16 type). A bf16 value is the high 16 bits of a float32.</summary>
public static class Bf16
{
    /// <summary>Exact widening: bf16 bits to float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Float32 to bf16 bits, round to nearest, ties to even (as torch does). NaN stays a quiet NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7FFF_FFFFu) > 0x7F80_0000u) return (ushort)((u >> 16) | 0x0040u);
        u += 0x7FFFu + ((u >> 16) & 1u);
        return (ushort)(u >> 16);
    }
}
