namespace Memory3.Engine.Memory.Quantize;

/// <summary>The orthogonal rotation applied before product quantization.</summary>
public enum QuantizerRotation : byte
{
    /// <summary>No rotation: sub-vectors are consecutive original dimensions.</summary>
    None = 0,
    /// <summary>
    /// PCA of the (residual) training vectors with eigenvalue allocation (Ge et al., OPQ's non-parametric solution):
    /// principal directions are dealt to the sub-quantizers so that each gets a balanced product of variances.
    /// </summary>
    Pca = 1,
    /// <summary>A seeded random orthogonal matrix (spreads outlier dimensions over all sub-vectors).</summary>
    Random = 2,
}

/// <summary>Small dense linear algebra for building rotations (double precision; dimensions are ~100).</summary>
internal static class Rotation
{
    /// <summary>Row-major [dim, dim] orthogonal matrix R with y = R·x. Rows are grouped so that sub-vector m of y
    /// (dims offsets[m]..offsets[m+1]) holds the directions allocated to sub-quantizer m.</summary>
    public static float[] Pca(float[] data, int dim, int[] offsets)
    {
        int n = data.Length / dim;
        var cov = new double[dim, dim];
        // Second moment about zero: the vectors are already centred (mean or residual of a k-means stage).
        var partial = new double[(n + 4095) / 4096][];
        Parallel.For(0, partial.Length, c =>
        {
            var acc = new double[dim * dim];
            int end = Math.Min(n, (c + 1) * 4096);
            var row = new double[dim];
            for (int i = c * 4096; i < end; i++)
            {
                for (int d = 0; d < dim; d++) row[d] = data[i * dim + d];
                for (int a = 0; a < dim; a++)
                {
                    double va = row[a];
                    int o = a * dim;
                    for (int b = a; b < dim; b++) acc[o + b] += va * row[b];
                }
            }
            partial[c] = acc;
        });
        foreach (var acc in partial)
            for (int a = 0; a < dim; a++)
                for (int b = a; b < dim; b++) cov[a, b] += acc[a * dim + b];
        for (int a = 0; a < dim; a++)
            for (int b = a; b < dim; b++) { cov[a, b] /= Math.Max(1, n); cov[b, a] = cov[a, b]; }

        var (values, vectors) = JacobiEigen(cov, dim);
        var order = Enumerable.Range(0, dim).OrderByDescending(i => values[i]).ThenBy(i => i).ToArray();

        // Eigenvalue allocation: each direction (largest first) goes to the non-full bucket with the smallest
        // accumulated log-variance, so that the buckets' variance products come out balanced.
        int m = offsets.Length - 1;
        var score = new double[m];
        var fill = new int[m];
        var rows = new float[dim * dim];
        double floor = 1e-12 * Math.Max(1e-30, values[order[0]]);
        double minLog = Math.Log(Math.Max(floor, values[order[dim - 1]]));
        foreach (int e in order)
        {
            int bucket = -1;
            for (int b = 0; b < m; b++)
                if (fill[b] < offsets[b + 1] - offsets[b] && (bucket < 0 || score[b] < score[bucket])) bucket = b;
            score[bucket] += Math.Log(Math.Max(floor, values[e])) - minLog;
            int r = offsets[bucket] + fill[bucket]++;
            for (int d = 0; d < dim; d++) rows[r * dim + d] = (float)vectors[d, e];
        }
        return rows;
    }

    /// <summary>A seeded random orthogonal matrix (Gram–Schmidt on Gaussian rows).</summary>
    public static float[] RandomOrthogonal(int dim, int seed)
    {
        var rng = new Random(seed);
        var q = new double[dim, dim];
        for (int i = 0; i < dim; i++)
        {
            while (true)
            {
                for (int d = 0; d < dim; d++) q[i, d] = Gaussian(rng);
                for (int pass = 0; pass < 2; pass++)
                    for (int j = 0; j < i; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < dim; d++) dot += q[i, d] * q[j, d];
                        for (int d = 0; d < dim; d++) q[i, d] -= dot * q[j, d];
                    }
                double norm = 0;
                for (int d = 0; d < dim; d++) norm += q[i, d] * q[i, d];
                norm = Math.Sqrt(norm);
                if (norm < 1e-6) continue;
                for (int d = 0; d < dim; d++) q[i, d] /= norm;
                break;
            }
        }
        var r = new float[dim * dim];
        for (int i = 0; i < dim; i++) for (int d = 0; d < dim; d++) r[i * dim + d] = (float)q[i, d];
        return r;
    }

    internal static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Cyclic Jacobi for a symmetric matrix: eigenvalues and eigenvectors (column e of vectors).</summary>
    internal static (double[] Values, double[,] Vectors) JacobiEigen(double[,] input, int n)
    {
        var a = (double[,])input.Clone();
        var v = new double[n, n];
        for (int i = 0; i < n; i++) v[i, i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, diag = 0;
            for (int p = 0; p < n; p++)
            {
                diag += a[p, p] * a[p, p];
                for (int q = p + 1; q < n; q++) off += a[p, q] * a[p, q];
            }
            if (off <= 1e-30 * Math.Max(diag, 1e-300)) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = a[p, q];
                    if (Math.Abs(apq) < 1e-300) continue;
                    double theta = (a[q, q] - a[p, p]) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k, p], akq = a[k, q];
                        a[k, p] = c * akp - s * akq;
                        a[k, q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p, k], aqk = a[q, k];
                        a[p, k] = c * apk - s * aqk;
                        a[q, k] = s * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[k, p], vkq = v[k, q];
                        v[k, p] = c * vkp - s * vkq;
                        v[k, q] = s * vkp + c * vkq;
                    }
                }
        }
        var values = new double[n];
        for (int i = 0; i < n; i++) values[i] = a[i, i];
        return (values, v);
    }
}
