using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Memory3.Engine.Memory.Quantize;

/// <summary>
/// One trained vector quantizer: x ≈ mean + Σ_s stage_s[code_s] + Rᵀ·[pq_0[c_0] | pq_1[c_1] | … ].
/// Encoding: subtract the mean, then for each residual stage the nearest full-dimension centroid; rotate the
/// residual (y = R·r) and quantize each sub-vector of y with its own 256-centroid codebook.
/// A code is <see cref="BytesPerVector"/> bytes: the stage codes, then the sub-quantizer codes.
/// Immutable once built; safe to use from many threads.
/// </summary>
public sealed class VectorQuantizer
{
    private const int K = QuantizerOptions.Centroids;
    public int Dim { get; }
    public int ResidualStages => _stages.Length;
    public int SubQuantizers => _pq.Length;
    public QuantizerRotation Rotation { get; }
    public int BytesPerVector => _stages.Length + _pq.Length;

    private readonly float[] _mean;        // [dim]
    private readonly Codebook[] _stages;   // each [K, dim]
    private readonly float[]? _rotation;   // [dim, dim] row-major, y = R·r; null = identity
    private readonly int[] _offsets;       // [M + 1] sub-vector boundaries in y
    private readonly Codebook[] _pq;       // codebook m is [K, offsets[m+1] − offsets[m]]
    private readonly float[] _pqFlat;      // all PQ centroids back to back: codebook m starts at K·offsets[m]

    private VectorQuantizer(int dim, float[] mean, Codebook[] stages, QuantizerRotation rotation, float[]? r, int[] offsets, Codebook[] pq)
    {
        Dim = dim; _mean = mean; _stages = stages; Rotation = rotation; _rotation = r; _offsets = offsets; _pq = pq;
        _pqFlat = new float[pq.Length == 0 ? 0 : K * dim];
        for (int m = 0; m < pq.Length; m++) pq[m].Centroids.CopyTo(_pqFlat, K * offsets[m]);
    }

    /// <summary>Sub-vector boundaries for m sub-quantizers over dim dimensions (the first dim % m get one more).</summary>
    public static int[] SplitDims(int dim, int m)
    {
        var o = new int[m + 1];
        for (int i = 0; i < m; i++) o[i + 1] = o[i] + dim / m + (i < dim % m ? 1 : 0);
        return o;
    }

    /// <summary>Trains on row-major [n, dim] float vectors (subsampled to options.MaxTrainingVectors).</summary>
    public static VectorQuantizer Train(float[] data, int dim, QuantizerOptions options, int seed)
    {
        options.Validate(dim);
        if (data.Length % dim != 0) throw new ArgumentException($"Training data length {data.Length} is not a multiple of {dim}.");
        int n = data.Length / dim;
        if (n == 0) throw new ArgumentException("A quantizer needs training vectors; the sample is empty.");
        var rng = new Random(seed);
        if (n > options.MaxTrainingVectors)
        {
            var rows = KMeans.SampleRows(n, options.MaxTrainingVectors, rng);
            var sub = new float[rows.Length * dim];
            for (int i = 0; i < rows.Length; i++) Array.Copy(data, rows[i] * dim, sub, i * dim, dim);
            data = sub; n = rows.Length;
        }
        else data = (float[])data.Clone();

        var mean = new float[dim];
        var sum = new double[dim];
        for (int i = 0; i < n; i++) for (int d = 0; d < dim; d++) sum[d] += data[i * dim + d];
        for (int d = 0; d < dim; d++) mean[d] = (float)(sum[d] / n);
        for (int i = 0; i < n; i++) for (int d = 0; d < dim; d++) data[i * dim + d] -= mean[d];

        var assign = new int[n];
        var dist = new float[n];
        var stages = new Codebook[options.ResidualStages];
        for (int s = 0; s < stages.Length; s++)
        {
            stages[s] = KMeans.Train(data, dim, K, options.Iterations, Mix(seed, 1 + s)).Codebook;
            KMeans.Assign(stages[s], data, n, dim, assign, dist);
            for (int i = 0; i < n; i++)
            {
                var c = stages[s].Row(assign[i]);
                for (int d = 0; d < dim; d++) data[i * dim + d] -= c[d];
            }
        }

        int m = options.SubQuantizers;
        var offsets = SplitDims(dim, Math.Max(m, 1));
        float[]? r = null;
        var rotation = m == 0 ? QuantizerRotation.None : options.Rotation;
        if (rotation == QuantizerRotation.Pca) r = Quantize.Rotation.Pca(data, dim, offsets);
        else if (rotation == QuantizerRotation.Random) r = Quantize.Rotation.RandomOrthogonal(dim, Mix(seed, 99));
        if (r is not null) data = RotateRows(data, n, dim, r);

        var pq = new Codebook[m];
        for (int j = 0; j < m; j++)
        {
            int o = offsets[j], w = offsets[j + 1] - o;
            var sub = new float[n * w];
            for (int i = 0; i < n; i++) Array.Copy(data, i * dim + o, sub, i * w, w);
            pq[j] = KMeans.Train(sub, w, K, options.Iterations, Mix(seed, 1000 + j)).Codebook;
        }
        return new VectorQuantizer(dim, mean, stages, rotation, r, m == 0 ? [0, dim] : offsets, pq);
    }

    private static int Mix(int seed, int salt) => unchecked((int)((uint)seed * 2654435761u ^ (uint)salt * 40503u));

    private static float[] RotateRows(float[] data, int n, int dim, float[] r)
    {
        var y = new float[data.Length];
        Parallel.For(0, (n + 1023) / 1024, c =>
        {
            int end = Math.Min(n, (c + 1) * 1024);
            for (int i = c * 1024; i < end; i++) Rotate(r, data.AsSpan(i * dim, dim), y.AsSpan(i * dim, dim));
        });
        return y;
    }

    private static void Rotate(float[] r, ReadOnlySpan<float> x, Span<float> y)
    {
        int dim = x.Length;
        for (int a = 0; a < dim; a++)
        {
            var row = r.AsSpan(a * dim, dim);
            float s = 0;
            for (int d = 0; d < dim; d++) s += row[d] * x[d];
            y[a] = s;
        }
    }

    /// <summary>Writes the code of <paramref name="x"/> (<see cref="BytesPerVector"/> bytes).</summary>
    public void Encode(ReadOnlySpan<float> x, Span<byte> code)
    {
        if (x.Length != Dim) throw new ArgumentException($"Vector has {x.Length} dims, quantizer {Dim}.");
        if (code.Length < BytesPerVector) throw new ArgumentException($"Code span holds {code.Length} bytes, need {BytesPerVector}.");
        Span<float> res = Dim <= 512 ? stackalloc float[Dim] : new float[Dim];
        Span<float> y = Dim <= 512 ? stackalloc float[Dim] : new float[Dim];
        for (int d = 0; d < Dim; d++) res[d] = x[d] - _mean[d];
        for (int s = 0; s < _stages.Length; s++)
        {
            int j = _stages[s].Nearest(res);
            code[s] = (byte)j;
            var c = _stages[s].Row(j);
            for (int d = 0; d < Dim; d++) res[d] -= c[d];
        }
        if (_pq.Length == 0) return;
        if (_rotation is null) res.CopyTo(y);
        else Rotate(_rotation, res, y);
        for (int m = 0; m < _pq.Length; m++)
            code[_stages.Length + m] = (byte)_pq[m].Nearest(y[_offsets[m].._offsets[m + 1]]);
    }

    /// <summary>Decodes <paramref name="count"/> codes (row-major [count, BytesPerVector]) into [count, Dim] floats.</summary>
    public void Decode(ReadOnlySpan<byte> codes, int count, Span<float> output)
    {
        int bpv = BytesPerVector, dim = Dim;
        if (codes.Length < count * bpv || output.Length < count * dim) throw new ArgumentException("Decode spans are too short.");
        int st = _stages.Length;
        int done = 0;
        if (_rotation is not null && Vector512.IsHardwareAccelerated && dim % 16 == 0)
        {
            done = count / 8 * 8;
            for (int i = 0; i < done; i += 8) RotatedGroup512(codes.Slice(i * bpv, 8 * bpv), output.Slice(i * dim, 8 * dim));
        }
        Span<float> y = dim <= 512 ? stackalloc float[dim] : new float[dim];
        for (int i = done; i < count; i++)
        {
            var code = codes.Slice(i * bpv, bpv);
            var x = output.Slice(i * dim, dim);
            _mean.CopyTo(x);
            if (_rotation is null)
                for (int m = 0; m < _pq.Length; m++) Add(_pq[m].Row(code[st + m]), x.Slice(_offsets[m]));
            else
            {
                for (int m = 0; m < _pq.Length; m++) _pq[m].Row(code[st + m]).CopyTo(y.Slice(_offsets[m]));
                for (int k = 0; k < dim; k++)
                {
                    float yk = y[k];
                    var rk = _rotation.AsSpan(k * dim, dim);
                    for (int j = 0; j < dim; j++) x[j] += yk * rk[j];
                }
            }
        }
        if (st > 0)
            for (int i = 0; i < count; i++)
            {
                var code = codes.Slice(i * bpv, bpv);
                for (int s = 0; s < st; s++) Add(_stages[s].Row(code[s]), output.Slice(i * dim, dim));
            }
    }

    private static void Add(ReadOnlySpan<float> src, Span<float> dst)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= src.Length; i += 8)
                (Vector256.Create(src.Slice(i, 8)) + Vector256.Create(dst.Slice(i, 8))).CopyTo(dst.Slice(i, 8));
        for (; i < src.Length; i++) dst[i] += src[i];
    }

    /// <summary>
    /// Eight vectors: x_i = mean + Σ_k y_i[k]·R[k, :], where y_i[k] is read straight from sub-quantizer m's centroid
    /// (k in m's sub-vector), so no y is materialised; each load of a row block of R serves eight accumulators.
    /// </summary>
    private void RotatedGroup512(ReadOnlySpan<byte> codes, Span<float> output)
    {
        int dim = Dim, bpv = BytesPerVector, st = _stages.Length, mCount = _pq.Length;
        ref float rr = ref MemoryMarshal.GetArrayDataReference(_rotation!);
        ref float mr = ref MemoryMarshal.GetArrayDataReference(_mean);
        ref float cb = ref MemoryMarshal.GetArrayDataReference(_pqFlat);
        ref float or = ref MemoryMarshal.GetReference(output);
        ref byte cr = ref MemoryMarshal.GetReference(codes);
        for (int j = 0; j < dim; j += 16)
        {
            var mv = Vector512.LoadUnsafe(ref mr, (nuint)j);
            Vector512<float> a0 = mv, a1 = mv, a2 = mv, a3 = mv, a4 = mv, a5 = mv, a6 = mv, a7 = mv;
            for (int m = 0; m < mCount; m++)
            {
                int off = _offsets[m], w = _offsets[m + 1] - off;
                nuint b = (nuint)(K * off), c = (nuint)(st + m);
                nuint p0 = b + (nuint)(Unsafe.Add(ref cr, c) * w);
                nuint p1 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)bpv) * w);
                nuint p2 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)(2 * bpv)) * w);
                nuint p3 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)(3 * bpv)) * w);
                nuint p4 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)(4 * bpv)) * w);
                nuint p5 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)(5 * bpv)) * w);
                nuint p6 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)(6 * bpv)) * w);
                nuint p7 = b + (nuint)(Unsafe.Add(ref cr, c + (nuint)(7 * bpv)) * w);
                for (int t = 0; t < w; t++)
                {
                    var rv = Vector512.LoadUnsafe(ref rr, (nuint)((off + t) * dim + j));
                    nuint u = (nuint)t;
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p0 + u)), rv, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p1 + u)), rv, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p2 + u)), rv, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p3 + u)), rv, a3);
                    a4 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p4 + u)), rv, a4);
                    a5 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p5 + u)), rv, a5);
                    a6 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p6 + u)), rv, a6);
                    a7 = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref cb, p7 + u)), rv, a7);
                }
            }
            nuint o = (nuint)j;
            a0.StoreUnsafe(ref or, o);
            a1.StoreUnsafe(ref or, o + (nuint)dim);
            a2.StoreUnsafe(ref or, o + (nuint)(2 * dim));
            a3.StoreUnsafe(ref or, o + (nuint)(3 * dim));
            a4.StoreUnsafe(ref or, o + (nuint)(4 * dim));
            a5.StoreUnsafe(ref or, o + (nuint)(5 * dim));
            a6.StoreUnsafe(ref or, o + (nuint)(6 * dim));
            a7.StoreUnsafe(ref or, o + (nuint)(7 * dim));
        }
    }

    // ---- serialization (little-endian) ----

    internal void Write(BinaryWriter w)
    {
        w.Write(Dim); w.Write(_stages.Length); w.Write(_pq.Length); w.Write((byte)Rotation);
        WriteFloats(w, _mean);
        foreach (var s in _stages) WriteFloats(w, s.Centroids);
        if (_rotation is not null) WriteFloats(w, _rotation);
        foreach (var o in _offsets) w.Write(o);
        foreach (var p in _pq) WriteFloats(w, p.Centroids);
    }

    internal static VectorQuantizer Read(BinaryReader r)
    {
        int dim = r.ReadInt32(), stages = r.ReadInt32(), m = r.ReadInt32();
        var rotation = (QuantizerRotation)r.ReadByte();
        if (dim <= 0 || dim > 4096 || stages < 0 || stages > 64 || m < 0 || m > dim || !Enum.IsDefined(rotation))
            throw new InvalidDataException($"Corrupt quantizer header (dim {dim}, stages {stages}, sub-quantizers {m}, rotation {rotation}).");
        var mean = ReadFloats(r, dim);
        var st = new Codebook[stages];
        for (int s = 0; s < stages; s++) st[s] = new Codebook(K, dim, ReadFloats(r, K * dim));
        var rot = rotation == QuantizerRotation.None ? null : ReadFloats(r, dim * dim);
        var offsets = new int[Math.Max(m, 1) + 1];
        for (int i = 0; i < offsets.Length; i++) offsets[i] = r.ReadInt32();
        if (offsets[0] != 0 || offsets[^1] != dim) throw new InvalidDataException("Corrupt quantizer sub-vector offsets.");
        var pq = new Codebook[m];
        for (int j = 0; j < m; j++)
        {
            int w = offsets[j + 1] - offsets[j];
            if (w <= 0) throw new InvalidDataException("Corrupt quantizer sub-vector offsets.");
            pq[j] = new Codebook(K, w, ReadFloats(r, K * w));
        }
        return new VectorQuantizer(dim, mean, st, rotation, rot, offsets, pq);
    }

    private static void WriteFloats(BinaryWriter w, float[] a) => w.Write(MemoryMarshal.AsBytes(a.AsSpan()));

    private static float[] ReadFloats(BinaryReader r, int n)
    {
        var a = new float[n];
        Debug.Assert(BitConverter.IsLittleEndian);
        try { r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(a.AsSpan())); }
        catch (EndOfStreamException) { throw new InvalidDataException("Quantizer file is truncated."); }
        return a;
    }
}
