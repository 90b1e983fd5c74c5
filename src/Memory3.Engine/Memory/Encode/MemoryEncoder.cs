using System.Runtime.InteropServices;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Memory.Encode;

/// <summary>
/// Writes explicit memories (DESIGN §4): each reference is encoded alone as <c>prefix + reference</c>, causally,
/// through the memory layers only; per memory layer and KV head the <c>tokens_per_head</c> reference tokens that
/// receive the most attention are kept, with their rotated keys, values and encode positions.
/// Runs on the engine thread (it owns tensors while it works); what it returns are plain arrays.
/// </summary>
public sealed class MemoryEncoder : IDisposable
{
    private readonly CausalLM _model;
    private readonly MemoryConfig _mem;
    private readonly Tensor _invFreq;

    /// <summary>The reference prefix as token ids (P of them), e.g. <c>&lt;s&gt;Reference:</c>.</summary>
    public int[] PrefixTokens { get; }
    public int TokensPerHead => _mem.MemoryTokensPerHead;
    public int MemoryLayers => _mem.MemoryLayers;
    public int MemoryKvHeads => _mem.MemoryKvHeads;
    public int HeadDim => _model.Config.HeadDim;
    public int ReferenceMaxTokens => _mem.ReferenceMaxTokens;

    public MemoryEncoder(CausalLM model, ITokenizer tokenizer)
    {
        _model = model;
        _mem = model.Config.Memory ?? throw new InvalidOperationException($"{model.Config.Architecture} has no memory configuration (memory needs Memory3ForCausalLM)");
        PrefixTokens = tokenizer.Encode(_mem.ReferencePrefix, addSpecialTokens: false);
        if (PrefixTokens.Length == 0) throw new InvalidOperationException("the reference prefix tokenizes to nothing");
        _invFreq = tensor(Rope.InverseFrequencies(model.Config).Select(v => (float)v).ToArray(), ScalarType.Float32, model.Device);
    }

    /// <summary>
    /// Encodes references (token ids, at most <c>reference_max_tokens</c> each) into memories.
    /// With <paramref name="sparse"/> false every reference token is kept (the ablation without sparsification):
    /// then <c>tokens_per_head</c> = the longest reference and shorter ones repeat their tokens.
    /// </summary>
    public (ushort[] Keys, ushort[] Values, ushort[] Positions)[] Encode(IReadOnlyList<int[]> references, bool sparse = true)
    {
        int B = references.Count;
        if (B == 0) return [];
        int P = PrefixTokens.Length;
        int maxLen = 0;
        foreach (var r in references)
        {
            if (r.Length == 0) throw new ArgumentException("a reference has no tokens");
            if (r.Length > _mem.ReferenceMaxTokens) throw new ArgumentException($"a reference has {r.Length} tokens; reference_max_tokens is {_mem.ReferenceMaxTokens}");
            maxLen = Math.Max(maxLen, r.Length);
        }
        int S = P + maxLen;
        int T = sparse ? _mem.MemoryTokensPerHead : maxLen;
        var c = _model.Config;
        int nh = c.NumAttentionHeads, nkv = c.NumKeyValueHeads, D = c.HeadDim, G = nh / nkv, memKv = _mem.MemoryKvHeads, L = _mem.MemoryLayers;

        var ids = new long[B * S];
        var valid = new bool[B * S];               // reference tokens (never the prefix or padding)
        for (int b = 0; b < B; b++)
        {
            for (int i = 0; i < P; i++) ids[b * S + i] = PrefixTokens[i];
            for (int i = 0; i < references[b].Length; i++) { ids[b * S + P + i] = references[b][i]; valid[b * S + P + i] = true; }
        }
        var keys = new ushort[B][];
        var values = new ushort[B][];
        var positions = new ushort[B][];
        for (int b = 0; b < B; b++) { keys[b] = new ushort[L * memKv * T * D]; values[b] = new ushort[L * memKv * T * D]; positions[b] = new ushort[L * memKv * T]; }

        _model.SetThreadsFor(B * S);   // a GEMM-sized step: libtorch gets every core again
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var dev = _model.Device;
        var dtype = _model.DType;
        var m = _model.Module.model;
        double scale = 1.0 / Math.Sqrt(D);
        var idT = tensor(ids, [B, S], ScalarType.Int64, dev);
        var validT = tensor(valid, [B, S], ScalarType.Bool, dev);
        // Pair mask for selection scores: both i and j are reference tokens. [B, 1, 1, S, S]
        var pairValid = (validT.unsqueeze(2) & validT.unsqueeze(1)).view(B, 1, 1, S, S);
        var (cos, sin) = Rope.Tables(_invFreq, Enumerable.Range(0, S).ToArray(), dtype, dev);   // [S, 1, D/2]
        var causal = ones([S, S], ScalarType.Bool, dev).tril().logical_not();                   // true above the diagonal

        var h = m.embed_tokens.Forward(idT.view(-1)).view(B, S, -1);
        for (int l = 0; l < L; l++)
        {
            // One scope per layer: only the residual stream survives into the next layer.
            using var layerScope = NewDisposeScope();
            var layer = m.layers[l];
            var attn = layer.self_attn;
            var x = layer.input_layernorm.Forward(h);
            var q = attn.q_proj.Forward(x.view(B * S, -1)).view(B, S, nh, D);
            var k = attn.k_proj.Forward(x.view(B * S, -1)).view(B, S, nkv, D);
            var v = attn.v_proj.Forward(x.view(B * S, -1)).view(B, S, nkv, D);

            int kTop = Math.Min(T, S);
            var order = MemorySelection.Order(q, k, validT, pairValid, kTop).cpu().contiguous();
            var orderArr = order.data<long>().ToArray();                                                 // [B, kv, kTop], valid tokens first

            // Store the rotated keys (RoPE at their encode position) and the values of the selected tokens.
            var kRot = Rope.Apply(k, cos, sin);                                                          // [B, S, kv, D]; cos [S, 1, D/2] broadcasts
            var kCpu = kRot.to(ScalarType.BFloat16).cpu().contiguous();
            var vCpu = v.to(ScalarType.BFloat16).cpu().contiguous();
            var kBits = MemoryMarshal.Cast<byte, ushort>(kCpu.bytes);
            var vBits = MemoryMarshal.Cast<byte, ushort>(vCpu.bytes);
            for (int b = 0; b < B; b++)
            {
                int len = references[b].Length;
                for (int hh = 0; hh < memKv; hh++)
                {
                    for (int t = 0; t < T; t++)
                    {
                        // Fewer reference tokens than slots: repeat the best ones in order.
                        int rank = t < len ? t : t % len;
                        int j = (int)orderArr[(b * nkv + hh) * kTop + rank];
                        int dst = (l * memKv + hh) * T + t;
                        positions[b][dst] = (ushort)j;
                        kBits.Slice(((b * S + j) * nkv + hh) * D, D).CopyTo(keys[b].AsSpan(dst * D, D));
                        vBits.Slice(((b * S + j) * nkv + hh) * D, D).CopyTo(values[b].AsSpan(dst * D, D));
                    }
                }
            }
            if (l == L - 1) break;   // the last memory layer's output is not needed

            // The layer's own causal attention over prefix + reference, then its MLP.
            var qr = Rope.Apply(q.view(B, S, nh, D), cos, sin).view(B, S, nkv, G, D).permute(0, 2, 3, 1, 4);   // [B, kv, G, S, D]
            var kr = kRot.permute(0, 2, 1, 3).unsqueeze(2);                                                   // [B, kv, 1, S, D]
            var vr = v.permute(0, 2, 1, 3).unsqueeze(2);
            var sc = (matmul(qr, kr.transpose(-1, -2)).to(ScalarType.Float32) * scale).masked_fill(causal, Scalars.NegativeInfinity);
            var o = matmul(sc.softmax(-1).to(dtype), vr);                                                      // [B, kv, G, S, D]
            o = o.permute(0, 3, 1, 2, 4).reshape(B * S, nh * D);
            h = h + attn.o_proj.Forward(o).view(B, S, -1);
            h = h + layer.mlp.Forward(layer.post_attention_layernorm.Forward(h.view(B * S, -1))).view(B, S, -1);
            h.MoveToOuterDisposeScope();
        }
        var result = new (ushort[], ushort[], ushort[])[B];
        for (int b = 0; b < B; b++) result[b] = (keys[b], values[b], positions[b]);
        return result;
    }

    public void Dispose() => _invFreq.Dispose();
}
