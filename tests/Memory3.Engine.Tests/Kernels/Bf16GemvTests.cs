using Memory3.Engine.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Tests.Kernels;

public unsafe class Bf16GemvTests
{
    public static TheoryData<int, int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, int, bool>();
        foreach (var (o, i) in new[] { (13, 77), (1, 1), (5, 31), (7, 32), (17, 33), (64, 96), (130, 257), (40, 1536) })
            for (int rows = 1; rows <= 8; rows++)
                data.Add(o, i, rows, rows % 2 == 1);
        data.Add(13, 77, 11, true);    // more than 8 rows: groups of 8
        data.Add(300, 100, 17, false);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Fp32MatchesNaiveDoubleLoop(int outF, int inF, int rows, bool withBias)
    {
        var rng = new Random(outF * 1000 + inF * 10 + rows);
        ushort[] w = RandomBf16(rng, outF * inF);
        float[] x = RandomFloats(rng, rows * inF);
        float[]? bias = withBias ? RandomFloats(rng, outF) : null;
        var y = new float[rows * outF];
        fixed (ushort* pw = w) fixed (float* px = x, py = y, pb = bias)
            Bf16Gemv.Linear(pw, outF, inF, px, rows, py, pb);

        for (int r = 0; r < rows; r++)
            for (int n = 0; n < outF; n++)
            {
                double expected = 0, magnitude = 0;
                for (int k = 0; k < inF; k++)
                {
                    double p = (double)Memory3.Engine.Model.BFloat16.ToFloat(w[n * inF + k]) * x[r * inF + k];
                    expected += p;
                    magnitude += Math.Abs(p);
                }
                if (bias is not null) { expected += bias[n]; magnitude += Math.Abs(bias[n]); }
                double tol = 1e-5 * magnitude + 1e-6;
                Assert.True(Math.Abs(y[r * outF + n] - expected) <= tol,
                    $"y[{r},{n}] = {y[r * outF + n]}, expected {expected} (tol {tol})");
            }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Bf16MatchesNaiveDoubleLoopRoundedOnce(int outF, int inF, int rows, bool withBias)
    {
        var rng = new Random(outF * 7 + inF * 3 + rows);
        ushort[] w = RandomBf16(rng, outF * inF);
        ushort[] x = RandomBf16(rng, rows * inF);
        ushort[]? bias = withBias ? RandomBf16(rng, outF) : null;
        var y = new ushort[rows * outF];
        fixed (ushort* pw = w, px = x, py = y, pb = bias)
            Bf16Gemv.Linear(pw, outF, inF, px, rows, py, pb);

        for (int r = 0; r < rows; r++)
            for (int n = 0; n < outF; n++)
            {
                double expected = 0, magnitude = 0;
                for (int k = 0; k < inF; k++)
                {
                    double p = (double)Memory3.Engine.Model.BFloat16.ToFloat(w[n * inF + k]) * Memory3.Engine.Model.BFloat16.ToFloat(x[r * inF + k]);
                    expected += p;
                    magnitude += Math.Abs(p);
                }
                if (bias is not null) { expected += Memory3.Engine.Model.BFloat16.ToFloat(bias[n]); magnitude += Math.Abs(Memory3.Engine.Model.BFloat16.ToFloat(bias[n])); }
                // One bf16 rounding (half an ulp: 2^-8 relative) plus float32 accumulation error.
                double tol = Math.Abs(expected) * (1.0 / 256) + 1e-5 * magnitude + 1e-6;
                double got = Memory3.Engine.Model.BFloat16.ToFloat(y[r * outF + n]);
                Assert.True(Math.Abs(got - expected) <= tol, $"y[{r},{n}] = {got}, expected {expected} (tol {tol})");
            }
    }

    [Fact]
    public void Fp32InputWithBf16OutputRoundsTheFp32Result()
    {
        var rng = new Random(5);
        const int outF = 37, inF = 70, rows = 3;
        ushort[] w = RandomBf16(rng, outF * inF);
        float[] x = RandomFloats(rng, rows * inF);
        ushort[] bias = RandomBf16(rng, outF);
        var yF = new float[rows * outF];
        var yB = new ushort[rows * outF];
        var biasF = bias.Select(Memory3.Engine.Model.BFloat16.ToFloat).ToArray();
        fixed (ushort* pw = w, pb = bias, pyb = yB) fixed (float* px = x, pyf = yF, pbf = biasF)
        {
            Bf16Gemv.Linear(pw, outF, inF, px, rows, pyf, pbf);
            Bf16Gemv.Linear(pw, outF, inF, px, rows, pyb, pb);
        }
        for (int i = 0; i < yF.Length; i++) Assert.Equal(Memory3.Engine.Model.BFloat16.FromFloat(yF[i]), yB[i]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void MatchesTorchLinearOnBf16Tensors(int rows)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(rows);
        var weight = torch.randn(300, 200, dtype: ScalarType.BFloat16);
        var bias = torch.randn(300, dtype: ScalarType.BFloat16);
        var x = torch.randn(rows, 200, dtype: ScalarType.BFloat16);
        var y = torch.empty(rows, 300, dtype: ScalarType.BFloat16);
        Bf16Gemv.Linear(x, weight, bias, y);
        var expected = torch.nn.functional.linear(x, weight, bias).to(ScalarType.Float32);
        var got = y.to(ScalarType.Float32);
        // Both round once to bf16 from (differently ordered) float32 sums: within 2 bf16 ulps of the result.
        var tol = expected.abs() * (2.0 / 128) + 1e-2;
        Assert.True((got - expected).abs().le(tol).all().item<bool>(),
            $"max abs diff {(got - expected).abs().max().item<float>()}");
        // And far from a wrong answer: the same result with the weight transposed differs.
        Assert.False(got.allclose(torch.zeros_like(got)));
    }

    [Fact]
    public void TensorOverloadHandlesFp32RowsInLeadingDimsAndSlices()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var big = torch.randn(3, 64, 96, dtype: ScalarType.BFloat16);
        var weight = big[1];                          // a contiguous view with a storage offset
        var x = torch.randn(2, 3, 96);                // float32, rows = 6
        var y = torch.empty(2, 3, 64);
        Bf16Gemv.Linear(x, weight, null, y);
        var expected = torch.nn.functional.linear(x, weight.to(ScalarType.Float32));
        Assert.True(y.allclose(expected, rtol: 1e-4, atol: 1e-4));
    }

    [Fact]
    public void TensorOverloadRejectsBadInputs()
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.zeros(8, 16, dtype: ScalarType.BFloat16);
        Assert.Throws<ArgumentException>(() => Bf16Gemv.Linear(torch.zeros(2, 15), w, null, torch.zeros(2, 8)));
        Assert.Throws<ArgumentException>(() => Bf16Gemv.Linear(torch.zeros(2, 16), w, null, torch.zeros(3, 8)));
        Assert.Throws<ArgumentException>(() => Bf16Gemv.Linear(torch.zeros(2, 16), w.to(ScalarType.Float32), null, torch.zeros(2, 8)));
        Assert.Throws<ArgumentException>(() => Bf16Gemv.Linear(torch.zeros(16, 2).t(), w, null, torch.zeros(2, 8)));
        Assert.Throws<ArgumentException>(() => Bf16Gemv.Linear(torch.zeros(2, 16, dtype: ScalarType.Float64), w, null, torch.zeros(2, 8)));
    }

    [Fact]
    public void AllSchedulingModesAgree()
    {
        var rng = new Random(9);
        const int outF = 2048, inF = 512, rows = 3;    // 2 MB of weights: large enough to go parallel
        ushort[] w = RandomBf16(rng, outF * inF);
        float[] x = RandomFloats(rng, rows * inF);
        var results = new List<float[]>();
        var saved = (Bf16Gemv.Scheduling, Bf16Gemv.SoftwarePrefetch);
        try
        {
            foreach (var (mode, pf) in new[] { (GemvScheduling.SingleThread, false), (GemvScheduling.WorkerPool, false),
                                               (GemvScheduling.WorkerPool, true), (GemvScheduling.ParallelFor, false) })
            {
                Bf16Gemv.Scheduling = mode;
                Bf16Gemv.SoftwarePrefetch = pf;
                var y = new float[rows * outF];
                fixed (ushort* pw = w) fixed (float* px = x, py = y)
                    for (int rep = 0; rep < 3; rep++) Bf16Gemv.Linear(pw, outF, inF, px, rows, py);
                results.Add(y);
            }
        }
        finally
        {
            (Bf16Gemv.Scheduling, Bf16Gemv.SoftwarePrefetch) = saved;
        }
        foreach (var r in results) Assert.Equal(results[0], r);   // same blocks, same order: bit-identical
    }

    [Fact]
    public void ConcurrentCallersGetCorrectResults()
    {
        var rng = new Random(11);
        const int outF = 1024, inF = 256;
        ushort[] w = RandomBf16(rng, outF * inF);
        float[] x = RandomFloats(rng, inF);
        var reference = new float[outF];
        fixed (ushort* pw = w) fixed (float* px = x, py = reference) Bf16Gemv.Linear(pw, outF, inF, px, 1, py);
        Parallel.For(0, 8, _ =>
        {
            var y = new float[outF];
            for (int rep = 0; rep < 20; rep++)
            {
                fixed (ushort* pw = w) fixed (float* px = x, py = y) Bf16Gemv.Linear(pw, outF, inF, px, 1, py);
                Assert.Equal(reference, y);
            }
        });
    }

    [Theory]
    [InlineData(1.0f, 0x3F80)]
    [InlineData(-2.0f, 0xC000)]
    [InlineData(0.0f, 0x0000)]
    [InlineData(-0.0f, 0x8000)]
    // 1 + 2^-8 lies exactly halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): ties go to even.
    [InlineData(1.00390625f, 0x3F80)]
    // 1 + 3·2^-8 lies halfway between 0x3F81 (odd) and 0x3F82 (even): up to even.
    [InlineData(1.01171875f, 0x3F82)]
    // Just above the halfway point rounds up: bits 0x3F808001.
    [InlineData(1.0039063692f, 0x3F81)]
    // Just below halfway rounds down: bits 0x3F807FFF.
    [InlineData(1.0039061308f, 0x3F80)]
    // 3.14159274 = 0x40490FDB → 0x4049 (0x0FDB < 0x8000).
    [InlineData(3.14159274f, 0x4049)]
    // The largest float rounds to infinity.
    [InlineData(float.MaxValue, 0x7F80)]
    [InlineData(float.PositiveInfinity, 0x7F80)]
    [InlineData(float.NegativeInfinity, 0xFF80)]
    public void Bf16RoundingIsNearestEven(float value, int expectedBits)
    {
        Assert.Equal((ushort)expectedBits, Memory3.Engine.Model.BFloat16.FromFloat(value));
    }

    [Fact]
    public void Bf16RoundingKeepsNaN()
    {
        Assert.True(float.IsNaN(Memory3.Engine.Model.BFloat16.ToFloat(Memory3.Engine.Model.BFloat16.FromFloat(float.NaN))));
        // A NaN whose payload is only in the low 16 bits must not become infinity.
        float lowPayloadNaN = BitConverter.UInt32BitsToSingle(0x7F80_0001);
        Assert.True(float.IsNaN(Memory3.Engine.Model.BFloat16.ToFloat(Memory3.Engine.Model.BFloat16.FromFloat(lowPayloadNaN))));
    }

    [Fact]
    public void KernelStoresAreRoundedToNearestEven()
    {
        // One weight 1.0, x chosen so the float32 sum is an exact tie: 1 + 2^-8 → 0x3F80; 1 + 3·2^-8 → 0x3F82.
        // x in bf16 cannot carry these, so use the float32 input with bf16 output.
        ushort[] w = { 0x3F80, 0x3F80 };                  // W = [[1], [1]]
        float[] x = { 1.00390625f };
        ushort[] y = new ushort[2];
        float[] xb = { 1.01171875f };
        fixed (ushort* pw = w, py = y) fixed (float* px = x, pxb = xb)
        {
            Bf16Gemv.Linear(pw, 2, 1, px, 1, py);
            Assert.Equal(0x3F80, y[0]);
            Bf16Gemv.Linear(pw, 2, 1, pxb, 1, py);
            Assert.Equal(0x3F82, y[0]);
        }
        // Through the vector path too (inFeatures 64): sum = 64 · 2^-6 · (1 + 2^-8)... built from exact pieces.
        const int inF = 64;
        var wv = Enumerable.Repeat((ushort)0x3F80, inF).ToArray();   // all ones
        var xv = new float[inF];
        xv[0] = 1f;
        xv[17] = 1f / 256;                               // total 1 + 2^-8: a tie, to even → 1.0
        var yv = new ushort[1];
        fixed (ushort* pw = wv, py = yv) fixed (float* px = xv) Bf16Gemv.Linear(pw, 1, inF, px, 1, py);
        Assert.Equal(0x3F80, yv[0]);
        xv[17] = 3f / 256;                               // 1 + 3·2^-8: a tie, to even → 0x3F82
        fixed (ushort* pw = wv, py = yv) fixed (float* px = xv) Bf16Gemv.Linear(pw, 1, inF, px, 1, py);
        Assert.Equal(0x3F82, yv[0]);
    }

    private static ushort[] RandomBf16(Random rng, int n)
    {
        var a = new ushort[n];
        for (int i = 0; i < n; i++) a[i] = Memory3.Engine.Model.BFloat16.FromFloat((float)(rng.NextDouble() * 2 - 1));
        return a;
    }

    private static float[] RandomFloats(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}
