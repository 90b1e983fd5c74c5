using System.Security.Cryptography;
using System.Text;
using Memory3.Engine.Model;

namespace Memory3.Engine.Memory.Quantize;

/// <summary>Keys or values: they have different statistics, so each gets its own quantizer.</summary>
public enum KvKind : byte { Key = 0, Value = 1 }

/// <summary>
/// The bank's quantizers: one <see cref="VectorQuantizer"/> per (memory layer, K or V), all with the same code size.
/// Stored as one file in the bank directory (<see cref="FileName"/>); <see cref="Fingerprint"/> is a hash of that
/// file's bytes, so any change to a codebook changes it (the bank fingerprint includes it).
/// </summary>
public sealed class QuantizerSet
{
    public const string FileName = "quantizer.m3q";
    private static ReadOnlySpan<byte> Magic => "M3VQ"u8;
    private const int FormatVersion = 1;

    private readonly VectorQuantizer[] _quantizers; // [layer * 2 + kind]
    private readonly byte[] _bytes;                 // the serialized file

    public int Layers { get; }
    public int HeadDim { get; }
    public int BytesPerVector { get; }
    /// <summary>32 lowercase hex characters: the first 128 bits of SHA-256 over the file's bytes.</summary>
    public string Fingerprint { get; }

    /// <summary>bf16 bytes of one vector divided by its code bytes.</summary>
    public double CompressionRatio => 2.0 * HeadDim / BytesPerVector;

    /// <summary>A description such as "PCA-PQ16x8" (from the first quantizer; all share the layout).</summary>
    public string Description
    {
        get
        {
            var q = _quantizers[0];
            return new QuantizerOptions { ResidualStages = q.ResidualStages, SubQuantizers = q.SubQuantizers, Rotation = q.Rotation }.Describe();
        }
    }

    public QuantizerSet(int headDim, IReadOnlyList<VectorQuantizer> quantizers)
    {
        if (quantizers.Count == 0 || quantizers.Count % 2 != 0) throw new ArgumentException("A quantizer set holds a K and a V quantizer per layer.");
        int bpv = quantizers[0].BytesPerVector;
        foreach (var q in quantizers)
        {
            if (q.Dim != headDim) throw new ArgumentException($"Quantizer dimension {q.Dim} differs from head_dim {headDim}.");
            if (q.BytesPerVector != bpv) throw new ArgumentException("All quantizers of a set must have the same code size.");
        }
        _quantizers = [.. quantizers];
        Layers = quantizers.Count / 2; HeadDim = headDim; BytesPerVector = bpv;
        _bytes = Serialize();
        Fingerprint = Convert.ToHexStringLower(SHA256.HashData(_bytes).AsSpan(0, 16));
    }

    public VectorQuantizer Get(int layer, KvKind kind)
    {
        if ((uint)layer >= (uint)Layers) throw new ArgumentOutOfRangeException(nameof(layer), $"Layer {layer} is outside the quantizer set's {Layers} layers.");
        return _quantizers[layer * 2 + (int)kind];
    }

    /// <summary>Trains from raw vectors: keys[layer] and values[layer] are row-major [n, headDim] floats.</summary>
    public static QuantizerSet Train(int headDim, IReadOnlyList<float[]> keys, IReadOnlyList<float[]> values, QuantizerOptions options, int seed = 0, IProgress<string>? progress = null)
    {
        if (keys.Count != values.Count || keys.Count == 0) throw new ArgumentException($"Need keys and values for the same layers (got {keys.Count} and {values.Count}).");
        options.Validate(headDim);
        var list = new VectorQuantizer[keys.Count * 2];
        for (int layer = 0; layer < keys.Count; layer++)
            for (int kind = 0; kind < 2; kind++)
            {
                progress?.Report($"layer {layer} {(KvKind)kind}");
                var data = kind == 0 ? keys[layer] : values[layer];
                list[layer * 2 + kind] = VectorQuantizer.Train(data, headDim, options, unchecked(seed * 7919 + layer * 2 + kind));
            }
        return new QuantizerSet(headDim, list);
    }

    /// <summary>
    /// Trains from memories sampled from the bank. Keeps a seeded uniform reservoir of whole memories, enough for
    /// options.MaxTrainingVectors vectors per quantizer, so the sample may be a stream of any length.
    /// </summary>
    public static QuantizerSet Train(MemoryShape shape, IEnumerable<DecodedMemory> sample, QuantizerOptions options, int seed = 0, IProgress<string>? progress = null)
    {
        shape.Validate();
        int keep = (options.MaxTrainingVectors + shape.VectorsPerLayer - 1) / shape.VectorsPerLayer;
        var reservoir = new List<DecodedMemory>();
        var rng = new Random(seed);
        long seen = 0;
        foreach (var m in sample)
        {
            if (m.Keys.Length != shape.ElementsPerKind || m.Values.Length != shape.ElementsPerKind)
                throw new ArgumentException($"Memory {m.Id} has {m.Keys.Length}/{m.Values.Length} key/value elements; shape {shape} needs {shape.ElementsPerKind}.");
            seen++;
            if (reservoir.Count < keep) reservoir.Add(m);
            else
            {
                long j = rng.NextInt64(seen);
                if (j < keep) reservoir[(int)j] = m;
            }
        }
        if (reservoir.Count == 0) throw new ArgumentException("Cannot train a quantizer on an empty sample of memories.");
        int per = shape.VectorsPerLayer * shape.HeadDim;
        var keys = new float[shape.Layers][];
        var values = new float[shape.Layers][];
        for (int layer = 0; layer < shape.Layers; layer++)
        {
            keys[layer] = new float[reservoir.Count * per];
            values[layer] = new float[reservoir.Count * per];
            for (int i = 0; i < reservoir.Count; i++)
            {
                var k = reservoir[i].Keys.AsSpan(layer * per, per);
                var v = reservoir[i].Values.AsSpan(layer * per, per);
                var kd = keys[layer].AsSpan(i * per, per);
                var vd = values[layer].AsSpan(i * per, per);
                for (int e = 0; e < per; e++) { kd[e] = BFloat16.ToFloat(k[e]); vd[e] = BFloat16.ToFloat(v[e]); }
            }
        }
        return Train(shape.HeadDim, keys, values, options, seed, progress);
    }

    // ---- file ----
    // "M3VQ" | int32 version | int32 layers | int32 head_dim | int32 bytes_per_vector | quantizer × (layers × 2) in
    // [layer][K, V] order (see VectorQuantizer.Write). Little-endian throughout.

    private byte[] Serialize()
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(FormatVersion); w.Write(Layers); w.Write(HeadDim); w.Write(BytesPerVector);
            foreach (var q in _quantizers) q.Write(w);
        }
        return ms.ToArray();
    }

    public void Write(Stream stream) => stream.Write(_bytes);

    /// <summary>Writes the file atomically (temp file, flush to disk, rename).</summary>
    public void Save(string path)
    {
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            Write(fs);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    public static QuantizerSet Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Quantizer file {path} does not exist.", path);
        using var fs = File.OpenRead(path);
        try { return Read(fs); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }

    public static QuantizerSet Read(Stream stream)
    {
        using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        Span<byte> magic = stackalloc byte[4];
        try
        {
            stream.ReadExactly(magic);
            if (!magic.SequenceEqual(Magic)) throw new InvalidDataException("Not a Memory3 quantizer file (bad magic).");
            int version = r.ReadInt32();
            if (version != FormatVersion) throw new InvalidDataException($"Quantizer file version {version} is not supported (expected {FormatVersion}).");
            int layers = r.ReadInt32(), dim = r.ReadInt32(), bpv = r.ReadInt32();
            if (layers <= 0 || layers > 4096) throw new InvalidDataException($"Corrupt quantizer file: {layers} layers.");
            var list = new VectorQuantizer[layers * 2];
            for (int i = 0; i < list.Length; i++) list[i] = VectorQuantizer.Read(r);
            var set = new QuantizerSet(dim, list);
            if (set.BytesPerVector != bpv) throw new InvalidDataException($"Corrupt quantizer file: header says {bpv} bytes per vector, codebooks give {set.BytesPerVector}.");
            return set;
        }
        catch (EndOfStreamException) { throw new InvalidDataException("Quantizer file is truncated."); }
    }
}
