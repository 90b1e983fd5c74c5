using System.Text.Json;
using System.Text.Json.Nodes;

namespace Memory3.Engine.Model;

/// <summary>A user-facing problem with a model directory: names the file and what is wrong. The CLI prints it as one line.</summary>
public sealed class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>llama3-type <c>rope_scaling</c>.</summary>
public sealed record RopeScaling(string RopeType, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// <summary>The explicit-memory keys of a <c>Memory3ForCausalLM</c> config (defaults are the paper's).</summary>
public sealed record MemoryConfig(
    int MemoryLayers,
    int MemoryKvHeads,
    int MemoryTokensPerHead,
    int ReferenceMaxTokens,
    int MemoriesPerChunk,
    int RetrievalInterval,
    string ReferencePrefix);

/// <summary>A validated Hugging Face <c>config.json</c> of the Llama family.</summary>
public sealed record ModelConfig
{
    public static readonly string[] SupportedArchitectures =
        ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Memory3ForCausalLM"];

    public required string Architecture { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry biases (Qwen2; Llama's <c>attention_bias</c>).</summary>
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public string? TorchDtype { get; init; }
    public MemoryConfig? Memory { get; init; }

    public int QueriesPerKv => NumAttentionHeads / NumKeyValueHeads;

    public static ModelConfig Load(string modelDir)
    {
        var path = Path.Combine(modelDir, "config.json");
        if (!Directory.Exists(modelDir)) throw new ModelLoadException($"{modelDir}: no such model directory");
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: missing (a model directory needs config.json)");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip }); }
        catch (JsonException e) { throw new ModelLoadException($"{path}: malformed JSON ({e.Message})", e); }
        if (root is not JsonObject obj) throw new ModelLoadException($"{path}: expected a JSON object");
        return Parse(obj, path);
    }

    public static ModelConfig Parse(JsonObject o, string path = "config.json")
    {
        var r = new Reader(o, path);
        string arch;
        if (o["architectures"] is JsonArray archs && archs.Count > 0 && archs[0] is JsonValue av && av.TryGetValue<string>(out var a)) arch = a;
        else if (o["architectures"] is null && r.OptString("model_type") is { } mt) arch = mt switch
        {
            "llama" => "LlamaForCausalLM", "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", "memory3" => "Memory3ForCausalLM",
            _ => throw new ModelLoadException($"{path}: unsupported model_type '{mt}'")
        };
        else throw new ModelLoadException($"{path}: key 'architectures' is missing or not a list of strings");
        if (Array.IndexOf(SupportedArchitectures, arch) < 0)
            throw new ModelLoadException($"{path}: unsupported architecture '{arch}' (supported: {string.Join(", ", SupportedArchitectures)})");

        int hidden = r.ReqInt("hidden_size", min: 1);
        int heads = r.ReqInt("num_attention_heads", min: 1);
        int kvHeads = r.OptInt("num_key_value_heads", min: 1) ?? heads;
        if (heads % kvHeads != 0) throw new ModelLoadException($"{path}: key 'num_key_value_heads' ({kvHeads}) must divide num_attention_heads ({heads})");
        int? headDimOpt = r.OptInt("head_dim", min: 1);
        if (headDimOpt is null && hidden % heads != 0) throw new ModelLoadException($"{path}: key 'hidden_size' ({hidden}) is not divisible by num_attention_heads ({heads}); give 'head_dim'");
        int headDim = headDimOpt ?? hidden / heads;
        if (headDim % 2 != 0) throw new ModelLoadException($"{path}: key 'head_dim' ({headDim}) must be even for RoPE");
        int layers = r.ReqInt("num_hidden_layers", min: 1);

        RopeScaling? scaling = null;
        if (o["rope_scaling"] is JsonObject rs)
        {
            var rr = new Reader(rs, path + ": rope_scaling");
            var type = rr.OptString("rope_type") ?? rr.OptString("type") ?? throw new ModelLoadException($"{path}: key 'rope_scaling.rope_type' is missing");
            if (type != "llama3" && type != "default")
                throw new ModelLoadException($"{path}: key 'rope_scaling.rope_type' = '{type}' is not supported (only 'llama3')");
            if (type == "llama3")
                scaling = new RopeScaling(type, rr.ReqDouble("factor", 1e-9), rr.OptDouble("low_freq_factor") ?? 1.0, rr.OptDouble("high_freq_factor") ?? 4.0,
                    rr.ReqInt("original_max_position_embeddings", min: 1));
        }
        else if (o["rope_scaling"] is not null && o["rope_scaling"]!.GetValueKind() != JsonValueKind.Null)
            throw new ModelLoadException($"{path}: key 'rope_scaling' must be an object or null");

        var eos = new List<int>();
        switch (o["eos_token_id"])
        {
            case null: break;
            case JsonArray arr: foreach (var e in arr) eos.Add(e is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw new ModelLoadException($"{path}: key 'eos_token_id' must be an integer or a list of integers")); break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.Null: break;
            case JsonValue v: eos.Add(v.TryGetValue<int>(out var x) ? x : throw new ModelLoadException($"{path}: key 'eos_token_id' must be an integer or a list of integers")); break;
            default: throw new ModelLoadException($"{path}: key 'eos_token_id' must be an integer or a list of integers");
        }

        MemoryConfig? memory = null;
        if (arch == "Memory3ForCausalLM")
        {
            int memLayers = r.OptInt("memory_layers", min: 0) ?? 22;
            if (memLayers > layers) throw new ModelLoadException($"{path}: key 'memory_layers' ({memLayers}) exceeds num_hidden_layers ({layers})");
            int memKv = r.OptInt("memory_kv_heads", min: 1) ?? kvHeads;
            if (memKv > kvHeads) throw new ModelLoadException($"{path}: key 'memory_kv_heads' ({memKv}) exceeds num_key_value_heads ({kvHeads})");
            memory = new MemoryConfig(memLayers, memKv,
                r.OptInt("memory_tokens_per_head", min: 1) ?? 8,
                r.OptInt("reference_max_tokens", min: 1) ?? 128,
                r.OptInt("memories_per_chunk", min: 0) ?? 5,
                r.OptInt("retrieval_interval", min: 1) ?? 64,
                r.OptString("reference_prefix") ?? "<s>Reference:");
        }

        return new ModelConfig
        {
            Architecture = arch,
            VocabSize = r.ReqInt("vocab_size", min: 1),
            HiddenSize = hidden,
            IntermediateSize = r.ReqInt("intermediate_size", min: 1),
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = r.OptDouble("rms_norm_eps", 0) ?? 1e-6,
            RopeTheta = r.OptDouble("rope_theta", 1e-9) ?? 10000.0,
            RopeScaling = scaling,
            // Sliding-window attention (Mistral v0.1) is not implemented: the context is capped at the window, so
            // longer prompts are refused rather than silently attended differently from the reference.
            MaxPositionEmbeddings = Math.Min(r.OptInt("max_position_embeddings", min: 1) ?? 2048, (r.OptBool("use_sliding_window") ?? true) && r.OptInt("sliding_window", min: 1) is { } window ? window : int.MaxValue),
            TieWordEmbeddings = r.OptBool("tie_word_embeddings") ?? false,
            AttentionBias = r.OptBool("attention_bias") ?? (arch == "Qwen2ForCausalLM"),
            MlpBias = r.OptBool("mlp_bias") ?? false,
            BosTokenId = r.OptInt("bos_token_id", min: 0),
            EosTokenIds = eos,
            TorchDtype = r.OptString("torch_dtype") ?? r.OptString("dtype"),
            Memory = memory,
        };
    }

    /// <summary>Writes the config as Hugging Face <c>config.json</c>.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["model_type"] = Architecture switch { "MistralForCausalLM" => "mistral", "Qwen2ForCausalLM" => "qwen2", "Memory3ForCausalLM" => "memory3", _ => "llama" },
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["hidden_act"] = "silu",
        };
        if (RopeScaling is { } s)
            o["rope_scaling"] = new JsonObject { ["rope_type"] = s.RopeType, ["factor"] = s.Factor, ["low_freq_factor"] = s.LowFreqFactor, ["high_freq_factor"] = s.HighFreqFactor, ["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings };
        if (BosTokenId is { } b) o["bos_token_id"] = b;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(e => (JsonNode)e).ToArray());
        if (TorchDtype is not null) o["torch_dtype"] = TorchDtype;
        if (Memory is { } m)
        {
            o["memory_layers"] = m.MemoryLayers; o["memory_kv_heads"] = m.MemoryKvHeads; o["memory_tokens_per_head"] = m.MemoryTokensPerHead;
            o["reference_max_tokens"] = m.ReferenceMaxTokens; o["memories_per_chunk"] = m.MemoriesPerChunk; o["retrieval_interval"] = m.RetrievalInterval;
            o["reference_prefix"] = m.ReferencePrefix;
        }
        return o;
    }

    public void Save(string modelDir) =>
        File.WriteAllText(Path.Combine(modelDir, "config.json"), ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    private readonly struct Reader(JsonObject o, string path)
    {
        private JsonValue? Value(string key)
        {
            var n = o[key];
            if (n is null || n.GetValueKind() == JsonValueKind.Null) return null;
            return n as JsonValue ?? throw new ModelLoadException($"{path}: key '{key}' must be a scalar, found {n.GetValueKind()}");
        }

        public int ReqInt(string key, int min) => OptInt(key, min) ?? throw new ModelLoadException($"{path}: key '{key}' is missing");
        public int? OptInt(string key, int min)
        {
            var v = Value(key);
            if (v is null) return null;
            if (v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<int>(out var i))
            {
                if (v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) i = (int)d;
                else throw new ModelLoadException($"{path}: key '{key}' must be an integer, found {v.ToJsonString()}");
            }
            if (i < min) throw new ModelLoadException($"{path}: key '{key}' must be at least {min}, found {i}");
            return i;
        }
        public double ReqDouble(string key, double min) => OptDouble(key, min) ?? throw new ModelLoadException($"{path}: key '{key}' is missing");
        public double? OptDouble(string key, double min = double.NegativeInfinity)
        {
            var v = Value(key);
            if (v is null) return null;
            if (v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d) || !double.IsFinite(d))
                throw new ModelLoadException($"{path}: key '{key}' must be a number, found {v.ToJsonString()}");
            if (d < min) throw new ModelLoadException($"{path}: key '{key}' must be at least {min}, found {d}");
            return d;
        }
        public bool? OptBool(string key)
        {
            var v = Value(key);
            if (v is null) return null;
            return v.GetValueKind() switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw new ModelLoadException($"{path}: key '{key}' must be true or false, found {v.ToJsonString()}") };
        }
        public string? OptString(string key)
        {
            var v = Value(key);
            if (v is null) return null;
            return v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new ModelLoadException($"{path}: key '{key}' must be a string, found {v.ToJsonString()}");
        }
    }
}
