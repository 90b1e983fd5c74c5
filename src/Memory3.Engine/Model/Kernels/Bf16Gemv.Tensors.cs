using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Model.Kernels;

public static unsafe partial class Bf16Gemv
{
    /// <summary>
    /// <c>y = x @ weight.T (+ bias)</c> on TorchSharp tensors, writing into the preallocated <paramref name="y"/>.
    /// x: [..., in] float32 or bf16, contiguous, CPU (all leading dimensions are rows).
    /// weight: [out, in] bf16, contiguous, CPU. bias: [out] float32 or bf16, or null.
    /// y: [..., out] float32 or bf16 (usually the dtype of x), contiguous, CPU, with as many rows as x.
    /// Works on the tensors' memory directly; allocates nothing.
    /// </summary>
    public static void Linear(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        if (weight.dim() != 2 || weight.dtype != ScalarType.BFloat16) ThrowArg("weight must be a 2-D bfloat16 tensor [out, in].");
        int outF = checked((int)weight.shape[0]), inF = checked((int)weight.shape[1]);
        CheckCpuContiguous(weight, nameof(weight));
        CheckCpuContiguous(x, nameof(x));
        CheckCpuContiguous(y, nameof(y));
        if (x.dim() < 1 || x.shape[^1] != inF) ThrowArg("x's last dimension must equal weight's in_features.");
        if (y.dim() < 1 || y.shape[^1] != outF) ThrowArg("y's last dimension must equal weight's out_features.");
        bool xBf16 = IsBf16OrF32(x, nameof(x)), yBf16 = IsBf16OrF32(y, nameof(y));
        long rowsL = x.numel() / inF;
        if (rowsL != y.numel() / outF) ThrowArg("x and y must have the same number of rows.");
        if (rowsL == 0) return;
        void* b = null;
        bool biasBf16 = false;
        if (bias is not null)
        {
            CheckCpuContiguous(bias, nameof(bias));
            if (bias.numel() != outF) ThrowArg("bias must have out_features elements.");
            biasBf16 = IsBf16OrF32(bias, nameof(bias));
            b = DataPtr(bias);
        }
        LinearCore((ushort*)DataPtr(weight), outF, inF, DataPtr(x), xBf16, checked((int)rowsL), DataPtr(y), yBf16, b, biasBf16);
    }

    /// <summary>The address of a tensor's first element (storage offset included), as libtorch's <c>data_ptr()</c>.</summary>
    public static void* DataPtr(Tensor t) => (void*)THSTensor_data(t.Handle);

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    private static bool IsBf16OrF32(Tensor t, string name)
    {
        if (t.dtype == ScalarType.BFloat16) return true;
        if (t.dtype != ScalarType.Float32) ThrowArg($"{name} must be float32 or bfloat16, not {t.dtype}.");
        return false;
    }

    private static void CheckCpuContiguous(Tensor t, string name)
    {
        if (t.device_type != DeviceType.CPU) ThrowArg($"{name} must be on the CPU.");
        if (!t.is_contiguous()) ThrowArg($"{name} must be contiguous.");
    }

    [DoesNotReturn]
    private static void ThrowArg(string message) => throw new ArgumentException(message);
}
