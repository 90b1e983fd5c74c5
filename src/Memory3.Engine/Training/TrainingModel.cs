using System.Runtime.InteropServices;
using Memory3.Engine.Memory.Encode;
using Memory3.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Training;

/// <summary>
/// A sequence batch's explicit memories for training: per memory layer, keys (rotated at their encode positions) and
/// values [B, kv_heads, M, D], and which of the M slots each row may see, [B, S, M] (its own chunk's valid slots).
/// </summary>
public sealed class MemoryInputs : IDisposable
{
    public required Tensor[] Keys { get; init; }
    public required Tensor[] Values { get; init; }
    public required Tensor Visible { get; init; }

    public void Dispose()
    {
        foreach (var t in Keys) t.Dispose();
        foreach (var t in Values) t.Dispose();
        Visible.Dispose();
    }
}

/// <summary>
/// The same <see cref="LlamaForCausalLM"/> module the server loads, in float32 with gradients, and a differentiable
/// forward that follows the inference conventions exactly (DESIGN §4): memories are written by running
/// <c>prefix + reference</c> through the memory layers and keeping the selected tokens' rotated keys and values; a
/// sequence reads them as <c>[prefix | memory slots | context at P+R..]</c>. Tests hold both forwards equal to the
/// engine's. Saved weights load with <see cref="CausalLM.Load"/>.
/// </summary>
public sealed class TrainingModel : IDisposable
{
    public ModelConfig Config { get; }
    internal LlamaForCausalLM Module { get; }
    private readonly Tensor _invFreq;

    private TrainingModel(ModelConfig config, LlamaForCausalLM module)
    {
        Config = config;
        Module = module;
        _invFreq = tensor(Rope.InverseFrequencies(config).Select(v => (float)v).ToArray(), ScalarType.Float32);
        foreach (var p in module.parameters()) p.requires_grad_(true);
        module.train();
    }

    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters() => Module.named_parameters().Select(p => (p.name, (Tensor)p.parameter));
    public IEnumerable<TorchSharp.Modules.Parameter> Parameters() => Module.parameters();
    public long ParameterCount => Module.parameters().Sum(p => p.numel());

    /// <summary>A fresh model: matrices N(0, 0.02²), output projections scaled by 1/√(2·layers), norms 1.</summary>
    public static TrainingModel Create(ModelConfig config, long seed)
    {
        manual_seed(seed);
        var module = new LlamaForCausalLM(config, ScalarType.Float32);
        using (no_grad())
        {
            double outStd = 0.02 / Math.Sqrt(2.0 * config.NumHiddenLayers);
            foreach (var (name, p) in module.named_parameters())
            {
                if (name.EndsWith("norm.weight")) p.fill_(1.0);
                else if (name.EndsWith(".bias")) p.zero_();
                else p.normal_(0, name.EndsWith("o_proj.weight") || name.EndsWith("down_proj.weight") ? outStd : 0.02);
            }
        }
        return new TrainingModel(config, module);
    }

    /// <summary>Loads a model directory's weights (any stored dtype) into float32 parameters for further training.</summary>
    public static TrainingModel Load(string modelDir)
    {
        var config = ModelConfig.Load(modelDir);
        using var lm = CausalLM.Load(modelDir, new ModelOptions { DType = "float32" });
        var module = new LlamaForCausalLM(config, ScalarType.Float32);
        using (no_grad())
        {
            var src = lm.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in module.named_parameters()) p.copy_(src[name]);
        }
        return new TrainingModel(config, module);
    }

    /// <summary>Writes config.json and model.safetensors (the weights in <paramref name="dtype"/>).</summary>
    public void Save(string dir, StDType dtype)
    {
        Directory.CreateDirectory(dir);
        Config.Save(dir);
        var w = new SafeTensorsWriter();
        foreach (var (name, p) in Module.named_parameters())
        {
            var data = p.detach().contiguous().data<float>().ToArray();
            w.Add(name, data, p.shape, dtype);
        }
        string tmp = Path.Combine(dir, "model.safetensors.tmp");
        w.Write(tmp);
        File.Move(tmp, Path.Combine(dir, "model.safetensors"), overwrite: true);
    }

    private MemoryConfig Mem => Config.Memory ?? throw new InvalidOperationException("this model has no memory configuration");

    /// <summary>
    /// Writes memories with the current weights, with gradients flowing into the kept keys and values (selection
    /// itself is a choice, not differentiable). Returns per memory layer keys and values [N, kv_heads, T, D], where
    /// T = tokens_per_head, or the longest reference when <paramref name="sparse"/> is false (shorter ones repeat
    /// their tokens, as <see cref="MemoryEncoder"/> does).
    /// </summary>
    public (Tensor[] Keys, Tensor[] Values) EncodeMemories(IReadOnlyList<int[]> references, int[] prefix, bool sparse = true)
    {
        var mem = Mem;
        if (mem.MemoryKvHeads != Config.NumKeyValueHeads) throw new NotSupportedException("training needs memory_kv_heads = num_key_value_heads");
        int N = references.Count, P = prefix.Length;
        int maxLen = references.Max(r => r.Length);
        int S = P + maxLen;
        int T = sparse ? mem.MemoryTokensPerHead : maxLen;
        int nh = Config.NumAttentionHeads, nkv = Config.NumKeyValueHeads, D = Config.HeadDim, G = nh / nkv, L = mem.MemoryLayers;
        var ids = new long[N * S];
        var valid = new bool[N * S];
        for (int b = 0; b < N; b++)
        {
            for (int i = 0; i < P; i++) ids[b * S + i] = prefix[i];
            for (int i = 0; i < references[b].Length; i++) { ids[b * S + P + i] = references[b][i]; valid[b * S + P + i] = true; }
        }
        var keys = new Tensor[L];
        var values = new Tensor[L];
        using var scope = NewDisposeScope();
        var validT = tensor(valid, [N, S], ScalarType.Bool);
        var pairValid = (validT.unsqueeze(2) & validT.unsqueeze(1)).view(N, 1, 1, S, S);
        var (cos, sin) = Rope.Tables(_invFreq, Enumerable.Range(0, S).ToArray(), ScalarType.Float32, CPU);
        var causal = ones([S, S], ScalarType.Bool).tril();
        var m = Module.model;
        var h = m.embed_tokens.weight.index_select(0, tensor(ids, ScalarType.Int64)).view(N, S, -1);
        int kTop = Math.Min(T, S);
        // Which ranked token fills slot t: the t-th best, or (fewer reference tokens than slots) the best ones again in order.
        var rankIdx = new long[N * T];
        for (int b = 0; b < N; b++)
            for (int t = 0; t < T; t++) rankIdx[b * T + t] = t < references[b].Length ? t : t % references[b].Length;
        var rank = tensor(rankIdx, [N, 1, T], ScalarType.Int64).expand(N, nkv, T);
        for (int l = 0; l < L; l++)
        {
            var layer = m.layers[l];
            var attn = layer.self_attn;
            var x = layer.input_layernorm.Forward(h);
            var q = Lin(attn.q_proj, x).view(N, S, nh, D);
            var k = Lin(attn.k_proj, x).view(N, S, nkv, D);
            var v = Lin(attn.v_proj, x).view(N, S, nkv, D);
            var order = MemorySelection.Order(q, k, validT, pairValid, kTop);                 // [N, kv, kTop]
            var chosen = order.gather(2, rank).unsqueeze(-1).expand(N, nkv, T, D);           // [N, kv, T, D]
            var kRot = Rope.Apply(k, cos, sin).permute(0, 2, 1, 3);                          // [N, kv, S, D]
            var vh = v.permute(0, 2, 1, 3);
            keys[l] = kRot.gather(2, chosen).MoveToOuterDisposeScope();
            values[l] = vh.gather(2, chosen).MoveToOuterDisposeScope();
            if (l == L - 1) break;
            var qr = Rope.Apply(q, cos, sin);
            h = h + Lin(attn.o_proj, Attend(qr, kRot, vh, causal.view(1, 1, 1, S, S), G));
            h = h + Mlp(layer.mlp, layer.post_attention_layernorm.Forward(h));
        }
        return (keys, values);
    }

    /// <summary>
    /// One sequence's memory inputs for a single chunk: <paramref name="references"/> written fresh and laid out one
    /// after another, visible to the context rows (from <paramref name="prefixLength"/>). Without sparsification each
    /// memory shows exactly its own tokens (the slots past a shorter reference's length are hidden, not repeated).
    /// </summary>
    public MemoryInputs MemoryInputsFor(IReadOnlyList<int[]> references, int[] prefix, bool sparse, int rows, int prefixLength, int contextLength)
    {
        var (keys, values) = EncodeMemories(references, prefix, sparse);
        long n = keys[0].shape[0], kv = keys[0].shape[1], T = keys[0].shape[2], D = keys[0].shape[3];
        var visible = new bool[rows * n * T];
        for (int i = prefixLength; i < prefixLength + contextLength; i++)
            for (int j = 0; j < n; j++)
            {
                long shown = sparse ? T : references[j].Length;
                for (int t = 0; t < shown; t++) visible[(i * n + j) * T + t] = true;
            }
        Tensor Layout(Tensor x) { var y = x.permute(1, 0, 2, 3).reshape(1, kv, n * T, D); x.Dispose(); return y; }
        return new MemoryInputs
        {
            Keys = keys.Select(Layout).ToArray(),
            Values = values.Select(Layout).ToArray(),
            Visible = tensor(visible, [1, rows, n * T], ScalarType.Bool),
        };
    }

    /// <summary>Whether linear layers run in bf16 with float32 master weights. Off: measured 1.9x slower than float32 here (the bf16 backward kernels).</summary>
    public bool Bf16Linears { get; set; }

    private Tensor Lin(Model.Linear l, Tensor x)
    {
        if (!Bf16Linears) return nn.functional.linear(x, l.weight, l.bias);
        var b = ScalarType.BFloat16;
        return nn.functional.linear(x.to(b), l.weight.to(b), l.bias?.to(b)).to(ScalarType.Float32);
    }

    private Tensor Mlp(LlamaMlp mlp, Tensor x) => Lin(mlp.down_proj, nn.functional.silu(Lin(mlp.gate_proj, x)) * Lin(mlp.up_proj, x));

    /// <summary>qr [B, S, heads, D]; keys/values [B, kv, K, D]; visible broadcastable to [B, kv, G, S, K]. Returns [B, S, heads·D].</summary>
    private static Tensor Attend(Tensor qr, Tensor keys, Tensor values, Tensor visible, int G)
    {
        long B = qr.shape[0], S = qr.shape[1], nh = qr.shape[2], D = qr.shape[3], nkv = keys.shape[1];
        var qg = qr.view(B, S, nkv, G, D).permute(0, 2, 3, 1, 4);                                 // [B, kv, G, S, D]
        var scores = matmul(qg, keys.unsqueeze(2).transpose(-1, -2)) * (1.0 / Math.Sqrt(D));    // [B, kv, G, S, K]
        scores = scores.masked_fill(visible.logical_not(), Scalars.NegativeInfinity);
        var o = matmul(scores.softmax(-1), values.unsqueeze(2));                                 // [B, kv, G, S, D]
        return o.permute(0, 3, 1, 2, 4).reshape(B, S, nh * D);
    }

    /// <summary>
    /// Logits [B, S, vocab] for token ids [B, S] at the given positions (shared by the batch). With
    /// <paramref name="memory"/>, the memory layers also attend to its slots where <see cref="MemoryInputs.Visible"/> allows.
    /// </summary>
    public Tensor Forward(Tensor ids, int[] positions, MemoryInputs? memory)
    {
        using var scope = NewDisposeScope();
        long B = ids.shape[0], S = ids.shape[1];
        int nh = Config.NumAttentionHeads, nkv = Config.NumKeyValueHeads, D = Config.HeadDim, G = nh / nkv;
        int memLayers = memory is null ? 0 : Mem.MemoryLayers;
        var (cos, sin) = Rope.Tables(_invFreq, positions, ScalarType.Float32, CPU);
        var causal = ones([S, S], ScalarType.Bool).tril().view(1, 1, 1, S, S);
        Tensor? withMemory = null;
        if (memory is not null)
        {
            long M = memory.Visible.shape[2];
            withMemory = cat([causal.expand(B, 1, 1, S, S), memory.Visible.view(B, 1, 1, S, M)], -1);
        }
        var m = Module.model;
        var h = m.embed_tokens.weight.index_select(0, ids.view(-1)).view(B, S, -1);
        for (int l = 0; l < m.layers.Count; l++)
        {
            var layer = m.layers[l];
            var attn = layer.self_attn;
            var x = layer.input_layernorm.Forward(h);
            var q = Rope.Apply(Lin(attn.q_proj, x).view(B, S, nh, D), cos, sin);
            var k = Rope.Apply(Lin(attn.k_proj, x).view(B, S, nkv, D), cos, sin).permute(0, 2, 1, 3);
            var v = Lin(attn.v_proj, x).view(B, S, nkv, D).permute(0, 2, 1, 3);
            Tensor o;
            if (l < memLayers)
                o = Attend(q, cat([k, memory!.Keys[l]], 2), cat([v, memory.Values[l]], 2), withMemory!, G);
            else
                o = Attend(q, k, v, causal, G);
            h = h + Lin(attn.o_proj, o);
            h = h + Mlp(layer.mlp, layer.post_attention_layernorm.Forward(h));
        }
        h = m.norm.Forward(h);
        var logits = Module.lm_head is null ? nn.functional.linear(h, m.embed_tokens.weight) : Lin(Module.lm_head, h);
        return logits.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _invFreq.Dispose();
        Module.Dispose();
    }
}
