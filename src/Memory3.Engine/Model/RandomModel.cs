using System.Runtime.InteropServices;

namespace Memory3.Engine.Model;

/// <summary>Writes random-weight models in the real Hugging Face format, for tests and benchmarks.</summary>
public static class RandomModel
{
    /// <summary>The presets of <c>memory3 init-random</c>: about 1M, 30M and 0.55B parameters.</summary>
    public static ModelConfig Preset(string name, string architecture = "Memory3ForCausalLM") => name switch
    {
        "tiny" => Make(architecture, vocab: 512, hidden: 128, ffn: 384, layers: 5, heads: 4, kvHeads: 2),
        "small" => Make(architecture, vocab: 8192, hidden: 512, ffn: 1536, layers: 8, heads: 8, kvHeads: 4),
        // The shapes toolchain.md measures: hidden 1536, FFN 4096, 20 layers, 12/4 heads, vocab 32000.
        "base" => Make(architecture, vocab: 32000, hidden: 1536, ffn: 4096, layers: 20, heads: 12, kvHeads: 4),
        _ => throw new ModelLoadException($"unknown preset '{name}' (use tiny, small or base)"),
    };

    public static ModelConfig Make(string architecture, int vocab, int hidden, int ffn, int layers, int heads, int kvHeads,
        int? headDim = null, bool tie = true, bool? attentionBias = null, RopeScaling? ropeScaling = null)
    {
        if (Array.IndexOf(ModelConfig.SupportedArchitectures, architecture) < 0)
            throw new ModelLoadException($"unsupported architecture '{architecture}' (supported: {string.Join(", ", ModelConfig.SupportedArchitectures)})");
        return new ModelConfig
        {
            Architecture = architecture,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = ffn,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim ?? hidden / heads,
            RmsNormEps = 1e-6,
            RopeTheta = 10000,
            RopeScaling = ropeScaling,
            MaxPositionEmbeddings = 4096,
            TieWordEmbeddings = tie,
            AttentionBias = attentionBias ?? architecture == "Qwen2ForCausalLM",
            BosTokenId = 1,
            EosTokenIds = [2],
            TorchDtype = "bfloat16",
            Memory = architecture == "Memory3ForCausalLM"
                ? new MemoryConfig(Math.Max(1, layers / 2), kvHeads, 8, 128, 5, 64, "<s>Reference:")
                : null,
        };
    }

    /// <summary>The tensor names and shapes a config implies, in checkpoint order.</summary>
    public static List<(string Name, long[] Shape)> TensorShapes(ModelConfig c)
    {
        long h = c.HiddenSize, f = c.IntermediateSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [c.VocabSize, h]) };
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            list.Add((p + "input_layernorm.weight", [h]));
            list.Add((p + "self_attn.q_proj.weight", [q, h]));
            list.Add((p + "self_attn.k_proj.weight", [kv, h]));
            list.Add((p + "self_attn.v_proj.weight", [kv, h]));
            if (c.AttentionBias)
            {
                list.Add((p + "self_attn.q_proj.bias", [q]));
                list.Add((p + "self_attn.k_proj.bias", [kv]));
                list.Add((p + "self_attn.v_proj.bias", [kv]));
            }
            list.Add((p + "self_attn.o_proj.weight", [h, q]));
            list.Add((p + "post_attention_layernorm.weight", [h]));
            list.Add((p + "mlp.gate_proj.weight", [f, h]));
            list.Add((p + "mlp.up_proj.weight", [f, h]));
            list.Add((p + "mlp.down_proj.weight", [h, f]));
        }
        list.Add(("model.norm.weight", [h]));
        if (!c.TieWordEmbeddings) list.Add(("lm_head.weight", [c.VocabSize, h]));
        return list;
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>model.safetensors</c> with seeded random weights: matrices N(0, 1/fan_in),
    /// embeddings N(0, 1/hidden), norm weights 1 + N(0, 0.1²), biases N(0, 0.1²). The same seed writes the same bytes.
    /// </summary>
    public static void Write(string dir, ModelConfig c, StDType dtype = StDType.BF16, ulong seed = 0, int shards = 1)
    {
        System.IO.Directory.CreateDirectory(dir);
        c.Save(dir);
        var shapes = TensorShapes(c);
        var writers = Enumerable.Range(0, shards).Select(_ => new SafeTensorsWriter()).ToArray();
        int k = 0;
        foreach (var (name, shape) in shapes)
        {
            ulong tensorSeed = seed * 0x9E3779B97F4A7C15UL ^ StableHash(name);
            (double mean, double std) = name.EndsWith("norm.weight") ? (1.0, 0.1)
                : name.EndsWith(".bias") ? (0.0, 0.1)
                : name.Contains("embed_tokens") || name.StartsWith("lm_head") ? (0.0, 1.0 / Math.Sqrt(shape[^1]))
                : (0.0, 1.0 / Math.Sqrt(shape[^1]));
            // Shards get consecutive runs of tensors, as exporters write them.
            int shard = (int)((long)k++ * shards / shapes.Count);
            writers[shard].Add(name, dtype, shape, (chunk, first) => FillNormal(chunk, dtype, tensorSeed, first, mean, std));
        }
        if (shards == 1) { writers[0].Write(Path.Combine(dir, "model.safetensors")); return; }
        var map = new System.Text.Json.Nodes.JsonObject();
        k = 0;
        for (int s = 0; s < shards; s++)
        {
            string file = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            writers[s].Write(Path.Combine(dir, file));
        }
        foreach (var (name, _) in shapes)
        {
            int shard = (int)((long)k++ * shards / shapes.Count);
            map[name] = $"model-{shard + 1:D5}-of-{shards:D5}.safetensors";
        }
        var index = new System.Text.Json.Nodes.JsonObject { ["metadata"] = new System.Text.Json.Nodes.JsonObject(), ["weight_map"] = map };
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index.ToJsonString());
    }

    private static void FillNormal(Span<byte> chunk, StDType dtype, ulong seed, long first, double mean, double std)
    {
        int n = chunk.Length / dtype.Size();
        var f32 = MemoryMarshal.Cast<byte, float>(chunk);
        var u16 = MemoryMarshal.Cast<byte, ushort>(chunk);
        for (int i = 0; i < n; i++)
        {
            float v = (float)(mean + std * Normal(seed, (ulong)(first + i)));
            switch (dtype)
            {
                case StDType.F32: f32[i] = v; break;
                case StDType.BF16: u16[i] = BFloat16.FromFloat(v); break;
                default: u16[i] = BitConverter.HalfToUInt16Bits((Half)v); break;
            }
        }
    }

    /// <summary>A standard normal that depends only on (seed, index): counter-based, so chunks need no shared state.</summary>
    private static double Normal(ulong seed, ulong index)
    {
        ulong a = SplitMix(seed ^ (index * 2 + 0x632BE59BD9B4E019UL));
        ulong b = SplitMix(a ^ 0xD1B54A32D192ED03UL);
        double u1 = ((a >> 11) + 0.5) * (1.0 / (1UL << 53));
        double u2 = (b >> 11) * (1.0 / (1UL << 53));
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211UL; }
        return h;
    }
}
