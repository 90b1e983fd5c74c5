using System.Buffers.Binary;
using System.Text.Json;

namespace Memory3.Engine.Tests.Model;

/// <summary>
/// An independent reference of the Llama forward pass: plain loops in double precision over weights read straight
/// from an F32 safetensors file by its own tiny parser. Shares nothing with the TorchSharp decoder but the config.
/// </summary>
internal sealed class ReferenceLlama
{
    private readonly Dictionary<string, (double[] Data, long[] Shape)> _w = new();
    private readonly JsonElement _cfg;

    public ReferenceLlama(string dir)
    {
        _cfg = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.Clone();
        var bytes = File.ReadAllBytes(Path.Combine(dir, "model.safetensors"));
        long hl = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)hl));
        foreach (var t in header.RootElement.EnumerateObject())
        {
            if (t.Name == "__metadata__") continue;
            if (t.Value.GetProperty("dtype").GetString() != "F32") throw new InvalidOperationException("reference reads F32 only");
            var shape = t.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offs = t.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var data = new double[(offs[1] - offs[0]) / 4];
            for (int i = 0; i < data.Length; i++) data[i] = BitConverter.ToSingle(bytes, (int)(8 + hl + offs[0] + 4L * i));
            _w[t.Name] = (data, shape);
        }
    }

    private int I(string k) => _cfg.GetProperty(k).GetInt32();
    private double D(string k, double d) => _cfg.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : d;

    /// <summary>Logits [T][vocab] for tokens at positions 0..T-1.</summary>
    public double[][] Forward(int[] tokens) => Forward(tokens, Enumerable.Range(0, tokens.Length).ToArray(), null, 0);

    /// <summary>
    /// Memory attached in memory layers: per layer l and KV head h a list of (rotated key, value) pairs, visible to
    /// every row at index ≥ <c>memoryFrom</c> (the context rows; the prefix rows before it never see memory).
    /// </summary>
    public delegate IReadOnlyList<(double[] K, double[] V)> MemoryKeys(int layer, int kvHead);

    /// <summary>Logits [T][vocab] for tokens at the given RoPE positions, with optional memory for rows ≥ memoryFrom.</summary>
    public double[][] Forward(int[] tokens, int[] positions, MemoryKeys? memory, int memoryFrom)
    {
        int H = I("hidden_size"), nh = I("num_attention_heads"), nkv = I("num_key_value_heads"), L = I("num_hidden_layers");
        int hd = _cfg.TryGetProperty("head_dim", out var hdp) ? hdp.GetInt32() : H / nh;
        double eps = D("rms_norm_eps", 1e-6), theta = D("rope_theta", 10000);
        bool tied = _cfg.TryGetProperty("tie_word_embeddings", out var tw) && tw.GetBoolean();
        int T = tokens.Length;
        var emb = _w["model.embed_tokens.weight"];
        int V = (int)emb.Shape[0];
        var h = new double[T][];
        for (int t = 0; t < T; t++) h[t] = emb.Data.AsSpan(tokens[t] * H, H).ToArray();

        var inv = new double[hd / 2];
        for (int i = 0; i < hd / 2; i++) inv[i] = Math.Pow(theta, -2.0 * i / hd);
        if (_cfg.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            double factor = rs.GetProperty("factor").GetDouble(), lo = rs.GetProperty("low_freq_factor").GetDouble(), hi = rs.GetProperty("high_freq_factor").GetDouble();
            double orig = rs.GetProperty("original_max_position_embeddings").GetDouble();
            for (int i = 0; i < inv.Length; i++)
            {
                double wl = 2 * Math.PI / inv[i];
                if (wl < orig / hi) continue;
                if (wl > orig / lo) { inv[i] /= factor; continue; }
                double s = (orig / wl - lo) / (hi - lo);
                inv[i] = (1 - s) * inv[i] / factor + s * inv[i];
            }
        }

        for (int l = 0; l < L; l++)
        {
            string p = $"model.layers.{l}.";
            var x = h.Select(r => RmsNorm(r, _w[p + "input_layernorm.weight"].Data, eps)).ToArray();
            var q = x.Select(r => Lin(r, p + "self_attn.q_proj")).ToArray();
            var k = x.Select(r => Lin(r, p + "self_attn.k_proj")).ToArray();
            var v = x.Select(r => Lin(r, p + "self_attn.v_proj")).ToArray();
            for (int t = 0; t < T; t++) { Rotate(q[t], nh, hd, positions[t], inv); Rotate(k[t], nkv, hd, positions[t], inv); }
            var attn = new double[T][];
            for (int t = 0; t < T; t++)
            {
                attn[t] = new double[nh * hd];
                for (int head = 0; head < nh; head++)
                {
                    int kvh = head / (nh / nkv);
                    // Keys this row sees: memory (context rows, memory layers) then the causal context.
                    var keys = new List<(double[] K, int KOff, double[] V, int VOff)>();
                    if (memory is not null && t >= memoryFrom)
                        foreach (var (mk, mv) in memory(l, kvh)) keys.Add((mk, 0, mv, 0));
                    for (int j = 0; j <= t; j++) keys.Add((k[j], kvh * hd, v[j], kvh * hd));
                    var sc = new double[keys.Count];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < keys.Count; j++)
                    {
                        double d = 0;
                        for (int e = 0; e < hd; e++) d += q[t][head * hd + e] * keys[j].K[keys[j].KOff + e];
                        sc[j] = d / Math.Sqrt(hd);
                        max = Math.Max(max, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keys.Count; j++) { sc[j] = Math.Exp(sc[j] - max); sum += sc[j]; }
                    for (int j = 0; j < keys.Count; j++)
                        for (int e = 0; e < hd; e++) attn[t][head * hd + e] += sc[j] / sum * keys[j].V[keys[j].VOff + e];
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Lin(attn[t], p + "self_attn.o_proj");
                for (int e = 0; e < H; e++) h[t][e] += o[e];
                var y = RmsNorm(h[t], _w[p + "post_attention_layernorm.weight"].Data, eps);
                var g = Lin(y, p + "mlp.gate_proj");
                var u = Lin(y, p + "mlp.up_proj");
                for (int e = 0; e < g.Length; e++) g[e] = g[e] / (1 + Math.Exp(-g[e])) * u[e];
                var d = Lin(g, p + "mlp.down_proj");
                for (int e = 0; e < H; e++) h[t][e] += d[e];
            }
        }
        var head_ = tied ? emb : _w["lm_head.weight"];
        return h.Select(r =>
        {
            var n = RmsNorm(r, _w["model.norm.weight"].Data, eps);
            var logits = new double[V];
            for (int i = 0; i < V; i++) { double s = 0; for (int e = 0; e < H; e++) s += head_.Data[(long)i * H + e] * n[e]; logits[i] = s; }
            return logits;
        }).ToArray();
    }

    public (double[] Data, long[] Shape) Weight(string name) => _w[name];

    /// <summary>Un-rotated q and k of memory-layer inputs, for checking token selection by hand: runs the layers
    /// before <paramref name="layer"/> causally over the tokens (positions 0..) and returns that layer's projections.</summary>
    public (double[][] Q, double[][] K) Projections(int[] tokens, int layer)
    {
        int H = I("hidden_size");
        double eps = D("rms_norm_eps", 1e-6);
        if (layer > 0)
        {
            // Reuse the full forward for the residual stream: run a truncated copy of the config.
            throw new NotSupportedException("projections are checked on layer 0");
        }
        var emb = _w["model.embed_tokens.weight"];
        var x = tokens.Select(t => RmsNorm(emb.Data.AsSpan(t * H, H).ToArray(), _w[$"model.layers.{layer}.input_layernorm.weight"].Data, eps)).ToArray();
        return (x.Select(r => Lin(r, $"model.layers.{layer}.self_attn.q_proj")).ToArray(), x.Select(r => Lin(r, $"model.layers.{layer}.self_attn.k_proj")).ToArray());
    }

    public static void RotateInPlace(double[] x, int heads, int hd, int pos, double theta)
    {
        var inv = new double[hd / 2];
        for (int i = 0; i < hd / 2; i++) inv[i] = Math.Pow(theta, -2.0 * i / hd);
        Rotate(x, heads, hd, pos, inv);
    }

    private double[] Lin(double[] x, string prefix)
    {
        var (w, shape) = _w[prefix + ".weight"];
        int o = (int)shape[0], n = (int)shape[1];
        var y = new double[o];
        _w.TryGetValue(prefix + ".bias", out var b);
        for (int i = 0; i < o; i++)
        {
            double s = b.Data is null ? 0 : b.Data[i];
            for (int j = 0; j < n; j++) s += w[(long)i * n + j] * x[j];
            y[i] = s;
        }
        return y;
    }

    private static double[] RmsNorm(double[] x, double[] w, double eps)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        double r = 1 / Math.Sqrt(ms + eps);
        return x.Select((v, i) => v * r * w[i]).ToArray();
    }

    private static void Rotate(double[] x, int heads, int hd, int pos, double[] inv)
    {
        for (int head = 0; head < heads; head++)
            for (int i = 0; i < hd / 2; i++)
            {
                double a = pos * inv[i], c = Math.Cos(a), s = Math.Sin(a);
                int i1 = head * hd + i, i2 = i1 + hd / 2;
                double x1 = x[i1], x2 = x[i2];
                x[i1] = x1 * c - x2 * s;
                x[i2] = x2 * c + x1 * s;
            }
    }
}
