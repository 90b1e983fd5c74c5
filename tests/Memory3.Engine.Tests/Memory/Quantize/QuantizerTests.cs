using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Quantize;

namespace Memory3.Engine.Tests.Memory.Quantize;

public sealed class KMeansTests
{
    private static float[] Blobs(int n, int dim, int centres, int seed)
    {
        var rng = new Random(seed);
        var c = new float[centres * dim];
        for (int i = 0; i < c.Length; i++) c[i] = (float)(rng.NextDouble() * 10);
        var x = new float[n * dim];
        for (int i = 0; i < n; i++)
        {
            int k = rng.Next(centres);
            for (int d = 0; d < dim; d++) x[i * dim + d] = c[k * dim + d] + (float)(rng.NextDouble() - 0.5);
        }
        return x;
    }

    [Fact]
    public void Distortion_never_increases_and_drops_overall()
    {
        var x = Blobs(4000, 8, 50, 3);
        var r = KMeans.Train(x, 8, 32, 12, seed: 7);
        Assert.Equal(13, r.Distortion.Length);
        for (int t = 1; t < r.Distortion.Length; t++)
            Assert.True(r.Distortion[t] <= r.Distortion[t - 1] * (1 + 1e-6), $"distortion rose at iteration {t}: {r.Distortion[t - 1]} -> {r.Distortion[t]}");
        Assert.True(r.Distortion[^1] < 0.9 * r.Distortion[0], $"Lloyd iterations did not help: {r.Distortion[0]} -> {r.Distortion[^1]}");
    }

    [Fact]
    public void Same_seed_same_centroids_other_seed_differs()
    {
        var x = Blobs(3000, 5, 40, 4);
        var a = KMeans.Train(x, 5, 64, 6, seed: 11);
        var b = KMeans.Train(x, 5, 64, 6, seed: 11);
        var c = KMeans.Train(x, 5, 64, 6, seed: 12);
        Assert.Equal(a.Codebook.Centroids, b.Codebook.Centroids);
        Assert.Equal(a.Distortion, b.Distortion);
        Assert.NotEqual(a.Codebook.Centroids, c.Codebook.Centroids);
    }

    [Fact]
    public void Fewer_points_than_centroids_reconstructs_every_point()
    {
        var x = Blobs(10, 4, 10, 5);
        var r = KMeans.Train(x, 4, 256, 3, seed: 1);
        Assert.Equal(0, r.Distortion[^1], 6);
    }

    [Fact]
    public void Nearest_matches_brute_force()
    {
        var x = Blobs(500, 80, 20, 6);
        var book = KMeans.Train(x, 80, 256, 2, seed: 2).Codebook;
        var rng = new Random(9);
        for (int t = 0; t < 50; t++)
        {
            var v = x.AsSpan(rng.Next(500) * 80, 80);
            int best = 0;
            for (int j = 1; j < 256; j++) if (book.Distance2(v, j) < book.Distance2(v, best)) best = j;
            Assert.True(book.Distance2(v, book.Nearest(v)) <= book.Distance2(v, best) * (1 + 1e-5) + 1e-6);
        }
    }
}

public sealed class QuantizerFixture
{
    public static readonly MemoryShape Shape = new(Layers: 2, KvHeads: 2, TokensPerHead: 4, HeadDim: 80);
    public SyntheticKv Gen { get; } = new(Shape, seed: 5);
    public QuantizerSet Set { get; }
    public QuantizerFixture() => Set = QuantizerSet.Train(Shape, Gen.Memories(0, 128), new QuantizerOptions { Iterations = 6 }, seed: 3);
}

public sealed class QuantizerTests(QuantizerFixture fx) : IClassFixture<QuantizerFixture>
{
    private static readonly MemoryShape Shape = QuantizerFixture.Shape;

    [Theory]
    [InlineData(0, 16, QuantizerRotation.Pca, 0.08)]
    [InlineData(2, 14, QuantizerRotation.Pca, 0.08)]
    [InlineData(0, 16, QuantizerRotation.None, 0.30)]
    public void Round_trip_error_is_small_and_far_below_the_trivial_quantizer(int stages, int m, QuantizerRotation rot, double limit)
    {
        var gen = new SyntheticKv(MemoryShape.Paper, seed: 2);
        var train = gen.Vectors(3, KvKind.Key, 3000, 1);
        var test = gen.Vectors(3, KvKind.Key, 1000, 2);
        var q = VectorQuantizer.Train(train, 80, new QuantizerOptions { ResidualStages = stages, SubQuantizers = m, Rotation = rot, Iterations = 6 }, seed: 1);
        Assert.True(q.BytesPerVector <= 16);
        var (rel, sq) = QuantizerBench.Error(q, train, test, 80);
        var (relMean, sqMean) = QuantizerBench.Error(null, train, test, 80);
        Assert.True(rel < limit, $"relative error {rel:F4} ≥ {limit}");
        Assert.True(rel < 0.5 * relMean && sq < 0.25 * sqMean, $"error {rel:F4}/{sq:F5} is not far below the mean-only quantizer's {relMean:F4}/{sqMean:F5}");
    }

    [Fact]
    public void Eighty_dims_take_at_most_16_bytes()
    {
        Assert.Equal(16, new QuantizerOptions().BytesPerVector);
        Assert.Equal(16, fx.Set.BytesPerVector);
        Assert.Equal(10.0, fx.Set.CompressionRatio, 6);
        Assert.Equal(new[] { 0, 6, 12, 17 }, VectorQuantizer.SplitDims(17, 3));
    }

    [Fact]
    public void Save_then_load_gives_identical_codes_and_fingerprint()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, QuantizerSet.FileName);
        fx.Set.Save(path);
        var loaded = QuantizerSet.Load(path);
        Assert.Equal(fx.Set.Fingerprint, loaded.Fingerprint);
        Assert.Matches("^[0-9a-f]{32}$", loaded.Fingerprint);
        var m = fx.Gen.Memory(5000);
        var a = new QuantizedCodec(fx.Set, Shape).Encode(m);
        var b = new QuantizedCodec(loaded, Shape).Encode(m);
        Assert.Equal(a.Payload, b.Payload);
        Assert.Equal(new QuantizedCodec(fx.Set, Shape).Decode(a).Keys, new QuantizedCodec(loaded, Shape).Decode(a).Keys);
    }

    [Fact]
    public void A_changed_codebook_changes_the_fingerprint()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, QuantizerSet.FileName);
        fx.Set.Save(path);
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x01; // a bit of the last PQ centroid of the last quantizer
        File.WriteAllBytes(path, bytes);
        Assert.NotEqual(fx.Set.Fingerprint, QuantizerSet.Load(path).Fingerprint);

        var other = QuantizerSet.Train(Shape, fx.Gen.Memories(0, 128), new QuantizerOptions { Iterations = 2, MaxTrainingVectors = 512 }, seed: 4);
        Assert.NotEqual(fx.Set.Fingerprint, other.Fingerprint);
    }

    [Fact]
    public void A_bad_or_truncated_file_is_refused()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, QuantizerSet.FileName);
        fx.Set.Save(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 100).ToArray());
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => QuantizerSet.Load(path)).Message);
        bytes[0] = (byte)'X';
        File.WriteAllBytes(path, bytes);
        Assert.Contains("magic", Assert.Throws<InvalidDataException>(() => QuantizerSet.Load(path)).Message);
    }

    [Fact]
    public void Quantized_codec_keeps_shape_and_metadata_with_small_error()
    {
        var codec = new QuantizedCodec(fx.Set, Shape);
        var m = fx.Gen.Memory(7000);
        var rec = codec.Encode(m);
        Assert.Equal(PayloadKind.Quantized, rec.Kind);
        Assert.Equal(2 * Shape.VectorsPerKind * 16, rec.Payload.Length);
        var d = codec.Decode(rec);
        Assert.Equal((m.Id, m.Namespace, m.Text), (d.Id, d.Namespace, d.Text));
        Assert.Equal(m.Positions, d.Positions);
        Assert.Equal(m.Keys.Length, d.Keys.Length);
        Assert.Equal(m.Values.Length, d.Values.Length);
        var report = QuantizationReport.Evaluate(fx.Set, fx.Gen.Memories(8000, 8));
        Assert.Equal(2, report.Layers.Count);
        Assert.Equal(8 * Shape.VectorsPerKind, report.AllKeys.Vectors);
        Assert.True(report.AllKeys.MeanRelativeError is > 0 and < 0.1, $"K error {report.AllKeys.MeanRelativeError}");
        Assert.True(report.AllValues.MeanRelativeError is > 0 and < 0.1, $"V error {report.AllValues.MeanRelativeError}");
        Assert.True(report.AllKeys.SquaredNormRatio < 0.01);
        // The codec's output is what Evaluate measured: decoding the same record twice is deterministic.
        Assert.Equal(d.Values, codec.Decode(rec).Values);
    }

    [Fact]
    public void Bf16_codec_round_trips_byte_exact()
    {
        var codec = new Bf16Codec(Shape);
        var m = fx.Gen.Memory(9000);
        var rec = codec.Encode(m);
        Assert.Equal(PayloadKind.Bf16, rec.Kind);
        Assert.Equal(4 * Shape.ElementsPerKind, rec.Payload.Length);
        Assert.Equal((byte)(m.Keys[0] & 0xFF), rec.Payload[0]); // little-endian
        Assert.Equal((byte)(m.Values[0] >> 8), rec.Payload[2 * Shape.ElementsPerKind + 1]);
        var d = codec.Decode(rec);
        Assert.Equal(m.Keys, d.Keys);
        Assert.Equal(m.Values, d.Values);
        Assert.Equal(m.Positions, d.Positions);
        Assert.Equal((m.Id, m.Namespace, m.Text), (d.Id, d.Namespace, d.Text));
    }

    [Fact]
    public void Codecs_decode_their_own_kind_and_MemoryCodec_both()
    {
        var m = fx.Gen.Memory(9100);
        var q = new QuantizedCodec(fx.Set, Shape).Encode(m);
        var b = new Bf16Codec(Shape).Encode(m);

        var noQuantizer = MemoryCodec.For(Shape, null);
        Assert.Equal(m.Keys, noQuantizer.Decode(b).Keys);
        var e = Assert.Throws<InvalidOperationException>(() => noQuantizer.Decode(q));
        Assert.Contains("quantizer", e.Message);
        Assert.Contains(m.Id, e.Message);

        Assert.Throws<InvalidOperationException>(() => new Bf16Codec(Shape).Decode(q));
        Assert.Throws<InvalidOperationException>(() => new QuantizedCodec(fx.Set, Shape).Decode(b));

        var both = MemoryCodec.For(Shape, fx.Set);
        Assert.Equal(m.Keys, both.Decode(b).Keys);
        Assert.Equal(new QuantizedCodec(fx.Set, Shape).Decode(q).Keys, both.Decode(q).Keys);

        var truncated = q with { Payload = q.Payload[..^1] };
        Assert.Throws<InvalidDataException>(() => both.Decode(truncated));
        Assert.Throws<ArgumentException>(() => new QuantizedCodec(fx.Set, Shape with { Layers = 3 }));
    }

    [Fact]
    public void Decode_of_a_partial_group_matches_the_grouped_kernel()
    {
        // 8-vector groups take the SIMD kernel, leftovers the scalar path: both must agree.
        var q = fx.Set.Get(1, KvKind.Value);
        var x = fx.Gen.Vectors(1, KvKind.Value, 11, 77);
        var codes = new byte[11 * 16];
        for (int i = 0; i < 11; i++) q.Encode(x.AsSpan(i * 80, 80), codes.AsSpan(i * 16, 16));
        var all = new float[11 * 80];
        q.Decode(codes, 11, all);
        var one = new float[80];
        for (int i = 0; i < 11; i++)
        {
            q.Decode(codes.AsSpan(i * 16, 16), 1, one);
            for (int d = 0; d < 80; d++) Assert.Equal(one[d], all[i * 80 + d], 4);
        }
    }
}
