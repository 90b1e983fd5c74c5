using TorchSharp;

namespace Memory3.Engine.Model;

/// <summary>
/// Scalars passed to libtorch as long-lived statics. A Scalar made on the spot by an implicit conversion (e.g.
/// <c>masked_fill(mask, float.NegativeInfinity)</c>) can be finalized while libtorch still reads it — the likely cause
/// of a 53-minute training run dying at step 2,686 of stage 2 in <c>masked_fill</c> ("toFloat: Expected false to be true").
/// </summary>
internal static class Scalars
{
    public static readonly Scalar NegativeInfinity = float.NegativeInfinity;
    public static readonly Scalar MinusOne = -1.0;
    public static readonly Scalar VeryNegative = -1e30;
}
