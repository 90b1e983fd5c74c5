using Memory3.Engine.Model;
using static TorchSharp.torch;

namespace Memory3.Engine.Memory.Encode;

/// <summary>
/// Token selection for writing a memory (DESIGN §4), shared by the encoder and by training so both select alike:
/// per KV head, w_j = Σ_i Σ_{h in group} exp(q_i·k_j/√d) over un-rotated q and k, with no causal mask, reference
/// tokens only; the highest-scoring j come first.
/// </summary>
public static class MemorySelection
{

    /// <param name="q">[B, S, heads, D] un-rotated queries.</param>
    /// <param name="k">[B, S, kv_heads, D] un-rotated keys.</param>
    /// <param name="valid">[B, S] true on reference tokens (never the prefix or padding).</param>
    /// <param name="pairValid">[B, 1, 1, S, S]: both i and j are reference tokens.</param>
    /// <returns>[B, kv_heads, <paramref name="kTop"/>] token indices, best first (no gradient).</returns>
    public static Tensor Order(Tensor q, Tensor k, Tensor valid, Tensor pairValid, int kTop)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long B = q.shape[0], S = q.shape[1], nh = q.shape[2], D = q.shape[3], nkv = k.shape[2];
        long G = nh / nkv;
        double scale = 1.0 / Math.Sqrt(D);
        var qg = q.detach().view(B, S, nkv, G, D).permute(0, 2, 3, 1, 4).to(ScalarType.Float32);   // [B, kv, G, S, D]
        var kg = k.detach().permute(0, 2, 1, 3).unsqueeze(2).to(ScalarType.Float32);                 // [B, kv, 1, S, D]
        var s = matmul(qg, kg.transpose(-1, -2)) * scale;                                            // [B, kv, G, S_i, S_j]
        s = s.masked_fill(pairValid.logical_not(), Scalars.NegativeInfinity);
        var mx = s.amax([2, 3, 4], keepdim: true).clamp_min(Scalars.VeryNegative);                                   // one constant per (b, head): order-preserving
        var w = (s - mx).exp().sum([2, 3]);                                                           // [B, kv, S_j]
        w = w.masked_fill(valid.unsqueeze(1).logical_not(), Scalars.MinusOne);                                    // prefix and padding never win
        return w.argsort(-1, descending: true).narrow(-1, 0, kTop).to(ScalarType.Int64).MoveToOuterDisposeScope();
    }
}
