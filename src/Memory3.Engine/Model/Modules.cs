using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Memory3.Engine.Model;

// Module classes mirror the Hugging Face Llama blocks, and their fields are named after the checkpoint keys
// (model.layers.N.self_attn.q_proj.weight), so a checkpoint loads strictly with no mapping table.
// Parameters are created empty, in the target dtype, and filled by the loader: weights never exist twice.
#pragma warning disable IDE1006 // names follow the checkpoint keys

internal static class Param
{
    public static Parameter Empty(ScalarType dtype, params long[] shape) => new(empty(shape, dtype), requires_grad: false);
}

/// <summary>nn.Linear with weight [out, in]; rows go to a bandwidth-bound kernel or libtorch's GEMM (see <see cref="LinearDispatch"/>).</summary>
public sealed class Linear : nn.Module
{
    public Parameter weight;
    public Parameter? bias;

    public Linear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype) : base(nameof(Linear))
    {
        weight = Param.Empty(dtype, outFeatures, inFeatures);
        bias = hasBias ? Param.Empty(dtype, outFeatures) : null;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x) => LinearDispatch.Apply(x, weight, bias);
}

public sealed class Embedding : nn.Module
{
    public Parameter weight;

    public Embedding(long vocab, long dim, ScalarType dtype) : base(nameof(Embedding))
    {
        weight = Param.Empty(dtype, vocab, dim);
        RegisterComponents();
    }

    public Tensor Forward(Tensor ids) => weight.index_select(0, ids);
}

/// <summary>Llama RMSNorm: normalise in float32, scale by the weight in the model dtype.</summary>
public sealed class RmsNorm : nn.Module
{
    public Parameter weight;
    private readonly double _eps;

    public RmsNorm(long dim, double eps, ScalarType dtype) : base(nameof(RmsNorm))
    {
        weight = Param.Empty(dtype, dim);
        _eps = eps;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.to(ScalarType.Float32);
        var variance = h.pow(2).mean([-1], keepdim: true);
        h = h * rsqrt(variance + _eps);
        return (weight * h.to(x.dtype)).MoveToOuterDisposeScope();
    }
}

public sealed class LlamaMlp : nn.Module
{
    public Linear gate_proj, up_proj, down_proj;

    public LlamaMlp(ModelConfig c, ScalarType dtype) : base(nameof(LlamaMlp))
    {
        gate_proj = new Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias, dtype);
        up_proj = new Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias, dtype);
        down_proj = new Linear(c.IntermediateSize, c.HiddenSize, c.MlpBias, dtype);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.silu(gate_proj.Forward(x)) * up_proj.Forward(x);
        return down_proj.Forward(h).MoveToOuterDisposeScope();
    }
}

public sealed partial class LlamaAttention : nn.Module
{
    public Linear q_proj, k_proj, v_proj, o_proj;
    private readonly int _heads, _kvHeads, _headDim, _layer, _memoryKvHeads;
    private readonly bool _memoryLayer;
    private readonly double _scale;

    public LlamaAttention(ModelConfig c, int layer, ScalarType dtype) : base(nameof(LlamaAttention))
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.NumKeyValueHeads; _headDim = c.HeadDim; _layer = layer;
        _memoryLayer = c.Memory is { } m && layer < m.MemoryLayers;
        _memoryKvHeads = c.Memory?.MemoryKvHeads ?? 0;
        _scale = 1.0 / Math.Sqrt(c.HeadDim);
        q_proj = new Linear(c.HiddenSize, (long)_heads * _headDim, c.AttentionBias, dtype);
        k_proj = new Linear(c.HiddenSize, (long)_kvHeads * _headDim, c.AttentionBias, dtype);
        v_proj = new Linear(c.HiddenSize, (long)_kvHeads * _headDim, c.AttentionBias, dtype);
        o_proj = new Linear((long)_heads * _headDim, c.HiddenSize, false, dtype);
        RegisterComponents();
    }

    /// <param name="x">[T, hidden] normalised hidden states of the flattened batch.</param>
    public Tensor Forward(Tensor x, StepContext ctx)
    {
        using var scope = NewDisposeScope();
        long T = x.shape[0];
        var q = Rope.Apply(q_proj.Forward(x).view(T, _heads, _headDim), ctx.Cos, ctx.Sin);
        var k = Rope.Apply(k_proj.Forward(x).view(T, _kvHeads, _headDim), ctx.Cos, ctx.Sin);
        var v = v_proj.Forward(x).view(T, _kvHeads, _headDim);

        var cacheK = ctx.Pool.K(_layer);
        var cacheV = ctx.Pool.V(_layer);
        int groups = _heads / _kvHeads;
        if (ctx.DecodeOnly) return o_proj.Forward(DecodeAttention(q, k, v, cacheK, cacheV, ctx, groups)).MoveToOuterDisposeScope();
        var seqs = ctx.Batch.Sequences;
        // A mixed step: the single-token sequences go through the batched decode path together, the prompt chunks one
        // by one; their rows are put back in batch order.
        bool mixed = ctx.DecodeSequences.Length >= 2;
        Tensor? decoded = null;
        if (mixed)
        {
            var rows = ctx.DecodeRows;
            decoded = DecodeAttention(q.index_select(0, rows), k.index_select(0, rows), v.index_select(0, rows), cacheK, cacheV, ctx, groups);
        }
        var outs = new Tensor[seqs.Length];
        int decodeIndex = 0;
        for (int s = 0; s < seqs.Length; s++)
        {
            var sl = seqs[s];
            if (mixed && sl.Length == 1) { outs[s] = decoded!.narrow(0, decodeIndex++, 1); continue; }
            // Write this step's keys and values into the slot, in place: [kv_heads, len, head_dim].
            var kS = k.narrow(0, sl.Start, sl.Length).transpose(0, 1);
            var vS = v.narrow(0, sl.Start, sl.Length).transpose(0, 1);
            cacheK[sl.Slot].narrow(1, sl.CacheStart, sl.Length).copy_(kS);
            cacheV[sl.Slot].narrow(1, sl.CacheStart, sl.Length).copy_(vS);

            int L = sl.CacheStart + sl.Length;
            var keys = cacheK[sl.Slot].narrow(1, 0, L).unsqueeze(1);      // [kv, 1, L, d]
            var values = cacheV[sl.Slot].narrow(1, 0, L).unsqueeze(1);    // [kv, 1, L, d]
            // Queries grouped by the KV head they share: [kv, groups, len, d].
            var qS = q.narrow(0, sl.Start, sl.Length).view(sl.Length, _kvHeads, groups, _headDim).permute(1, 2, 0, 3);
            var scores = matmul(qS, keys.transpose(-1, -2)).to(ScalarType.Float32) * _scale;  // [kv, groups, len, L]
            if (sl.Length > 1) scores = scores + ctx.CausalMask(sl.Length, sl.CacheStart, L);
            if (sl.MemoryLength > 0) scores = scores + ctx.MemoryMask(_memoryLayer, _memoryKvHeads, _kvHeads, sl.MemoryStart, sl.MemoryLength, sl.MemoryValid, L);
            var probs = scores.softmax(-1).to(x.dtype);
            var o = matmul(probs, values);                                  // [kv, groups, len, d]
            outs[s] = o.permute(2, 0, 1, 3).reshape(sl.Length, (long)_heads * _headDim);
        }
        var attn = outs.Length == 1 ? outs[0] : cat(outs, 0);
        return o_proj.Forward(attn).MoveToOuterDisposeScope();
    }
}

public sealed partial class LlamaAttention
{
    /// <summary>
    /// Attention for a step in which every sequence brings one token: one batched product per layer instead of a
    /// loop over sequences. Keys and values are written with one indexed put, the sequences' slots gathered up to the
    /// longest length (or narrowed in place when the slots are 0..B-1), and a per-sequence mask hides what lies past
    /// each sequence's own length and its memory rules.
    /// </summary>
    private Tensor DecodeAttention(Tensor q, Tensor k, Tensor v, Tensor cacheK, Tensor cacheV, StepContext ctx, int groups)
    {
        long B = q.shape[0];
        var (slots, positions, maxLen, contiguous) = ctx.DecodeIndex();
        // cache[slot_b, :, pos_b, :] = k_b
        cacheK.index_put_(k, TensorIndex.Tensor(slots), TensorIndex.Colon, TensorIndex.Tensor(positions));
        cacheV.index_put_(v, TensorIndex.Tensor(slots), TensorIndex.Colon, TensorIndex.Tensor(positions));
        // Narrow to the longest length before gathering: the gather copies only [B, kv, L, d], not whole slots.
        var kL = cacheK.narrow(2, 0, maxLen);
        var vL = cacheV.narrow(2, 0, maxLen);
        var keys = (contiguous ? kL.narrow(0, 0, B) : kL.index_select(0, slots)).unsqueeze(2);     // [B, kv, 1, L, d]
        var values = (contiguous ? vL.narrow(0, 0, B) : vL.index_select(0, slots)).unsqueeze(2);
        var qb = q.view(B, _kvHeads, groups, 1, _headDim);                                                                     // [B, kv, G, 1, d]
        var scores = matmul(qb, keys.transpose(-1, -2)).to(ScalarType.Float32) * _scale;                                       // [B, kv, G, 1, L]
        scores = scores + ctx.DecodeMask(_memoryLayer, _memoryKvHeads, _kvHeads);                                              // [B, kv, 1, 1, L]
        var o = matmul(scores.softmax(-1).to(q.dtype), values);                                                                 // [B, kv, G, 1, d]
        return o.reshape(B, (long)_heads * _headDim);
    }
}

public sealed class LlamaDecoderLayer : nn.Module
{
    public LlamaAttention self_attn;
    public LlamaMlp mlp;
    public RmsNorm input_layernorm, post_attention_layernorm;

    public LlamaDecoderLayer(ModelConfig c, int layer, ScalarType dtype) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(c, layer, dtype);
        mlp = new LlamaMlp(c, dtype);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, StepContext ctx)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.Forward(input_layernorm.Forward(x), ctx);
        return (h + mlp.Forward(post_attention_layernorm.Forward(h))).MoveToOuterDisposeScope();
    }
}

public sealed class LlamaModel : nn.Module
{
    public Embedding embed_tokens;
    public ModuleList<LlamaDecoderLayer> layers;
    public RmsNorm norm;

    public LlamaModel(ModelConfig c, ScalarType dtype) : base(nameof(LlamaModel))
    {
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new LlamaDecoderLayer(c, i, dtype)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        RegisterComponents();
    }
}

/// <summary>The causal LM: <c>model</c> plus <c>lm_head</c> (absent when the embeddings are tied).</summary>
public sealed class LlamaForCausalLM : nn.Module
{
    public LlamaModel model;
    public Linear? lm_head;
    private readonly ModelConfig _config;

    public LlamaForCausalLM(ModelConfig c, ScalarType dtype) : base(nameof(LlamaForCausalLM))
    {
        _config = c;
        model = new LlamaModel(c, dtype);
        lm_head = c.TieWordEmbeddings ? null : new Linear(c.HiddenSize, c.VocabSize, false, dtype);
        RegisterComponents();
    }

    /// <summary>Runs the decoder over a flattened batch and returns the logits of the selected rows, [R, vocab] float32.</summary>
    public Tensor Forward(StepContext ctx, Tensor ids, Tensor? logitRows)
    {
        using var scope = NewDisposeScope();
        var h = model.embed_tokens.Forward(ids);
        for (int i = 0; i < model.layers.Count; i++) h = model.layers[i].Forward(h, ctx);
        if (logitRows is not null) h = h.index_select(0, logitRows);
        h = model.norm.Forward(h);
        var logits = lm_head is null ? LinearDispatch.Apply(h, model.embed_tokens.weight, null) : lm_head.Forward(h);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
