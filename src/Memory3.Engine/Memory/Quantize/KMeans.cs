namespace Memory3.Engine.Memory.Quantize;

/// <summary>A trained codebook and the mean squared distortion after each assignment step.</summary>
/// <param name="Distortion">Entry t is the mean squared distance to the nearest centroid after assignment t
/// (t = 0 with the initial centroids, the last one with the final centroids); non-increasing.</param>
public sealed record KMeansResult(Codebook Codebook, double[] Distortion);

/// <summary>
/// Lloyd's k-means: k-means++ seeding on a subsample, then Lloyd iterations with a parallel assignment step and a
/// sequential (so deterministic) update in double. Deterministic for a seed, whatever the thread count.
/// Empty clusters are re-seeded at the points farthest from their centroids, which never raises the distortion.
/// </summary>
public static class KMeans
{
    private const int Chunk = 2048;
    private const int SeedingSampleMax = 8192;

    /// <param name="data">Row-major [n, dim].</param>
    public static KMeansResult Train(float[] data, int dim, int k, int iterations, int seed)
    {
        if (dim <= 0 || data.Length % dim != 0) throw new ArgumentException($"Data length {data.Length} is not a multiple of dim {dim}.");
        int n = data.Length / dim;
        if (n == 0) throw new ArgumentException("k-means needs at least one training vector.");
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k));
        var rng = new Random(seed);
        var centroids = Seed(data, n, dim, k, rng);
        var assign = new int[n];
        var dist = new float[n];
        var history = new List<double>(iterations + 1);
        for (int it = 0; ; it++)
        {
            var book = new Codebook(k, dim, centroids);
            history.Add(Assign(book, data, n, dim, assign, dist));
            if (it == iterations) return new KMeansResult(book, history.ToArray());
            centroids = Update(data, n, dim, k, assign, dist, centroids);
        }
    }

    /// <summary>Assigns every row to its nearest centroid (in parallel); returns the mean squared distance.</summary>
    public static double Assign(Codebook book, float[] data, int n, int dim, int[] assign, float[] dist)
    {
        int chunks = (n + Chunk - 1) / Chunk;
        var partial = new double[chunks];
        Parallel.For(0, chunks, c =>
        {
            int end = Math.Min(n, (c + 1) * Chunk);
            double s = 0;
            for (int i = c * Chunk; i < end; i++)
            {
                var x = data.AsSpan(i * dim, dim);
                int j = book.Nearest(x);
                float d2 = book.Distance2(x, j);
                assign[i] = j; dist[i] = d2; s += d2;
            }
            partial[c] = s;
        });
        double total = 0;
        foreach (var p in partial) total += p;
        return total / n;
    }

    private static float[] Update(float[] data, int n, int dim, int k, int[] assign, float[] dist, float[] old)
    {
        var sums = new double[k * dim];
        var counts = new int[k];
        for (int i = 0; i < n; i++)
        {
            int j = assign[i];
            counts[j]++;
            var x = data.AsSpan(i * dim, dim);
            var s = sums.AsSpan(j * dim, dim);
            for (int d = 0; d < dim; d++) s[d] += x[d];
        }
        var next = new float[k * dim];
        var taken = (float[])dist.Clone();
        for (int j = 0; j < k; j++)
        {
            if (counts[j] > 0)
            {
                for (int d = 0; d < dim; d++) next[j * dim + d] = (float)(sums[j * dim + d] / counts[j]);
                continue;
            }
            // Empty: move it onto the farthest point not yet used (deterministic; lowest index on ties).
            int far = 0;
            for (int i = 1; i < n; i++) if (taken[i] > taken[far]) far = i;
            if (taken[far] <= 0) { Array.Copy(old, j * dim, next, j * dim, dim); continue; }
            taken[far] = -1;
            Array.Copy(data, far * dim, next, j * dim, dim);
        }
        return next;
    }

    /// <summary>k-means++ on a random subsample of at most 8,192 rows.</summary>
    private static float[] Seed(float[] data, int n, int dim, int k, Random rng)
    {
        int m = Math.Min(n, SeedingSampleMax);
        int[] rows = SampleRows(n, m, rng);
        var centroids = new float[k * dim];
        var best = new double[m];
        Array.Fill(best, double.MaxValue);
        int first = rows[rng.Next(m)];
        Array.Copy(data, first * dim, centroids, 0, dim);
        for (int c = 1; c < k; c++)
        {
            var last = centroids.AsSpan((c - 1) * dim, dim).ToArray();
            int chunks = (m + Chunk - 1) / Chunk;
            var partial = new double[chunks];
            Parallel.For(0, chunks, ch =>
            {
                int end = Math.Min(m, (ch + 1) * Chunk);
                double s = 0;
                for (int i = ch * Chunk; i < end; i++)
                {
                    var x = data.AsSpan(rows[i] * dim, dim);
                    double d2 = 0;
                    for (int d = 0; d < dim; d++) { double t = x[d] - last[d]; d2 += t * t; }
                    if (d2 < best[i]) best[i] = d2;
                    s += best[i];
                }
                partial[ch] = s;
            });
            double total = 0;
            foreach (var p in partial) total += p;
            int pick;
            if (total <= 0) pick = rows[rng.Next(m)]; // fewer distinct points than k: duplicates are harmless
            else
            {
                double r = rng.NextDouble() * total, acc = 0;
                pick = rows[m - 1];
                for (int i = 0; i < m; i++)
                {
                    acc += best[i];
                    if (acc >= r && best[i] > 0) { pick = rows[i]; break; }
                }
            }
            Array.Copy(data, pick * dim, centroids, c * dim, dim);
        }
        return centroids;
    }

    /// <summary>m distinct row indices out of n, in increasing order (all rows when m ≥ n).</summary>
    internal static int[] SampleRows(int n, int m, Random rng)
    {
        if (m >= n) return Enumerable.Range(0, n).ToArray();
        var perm = Enumerable.Range(0, n).ToArray();
        for (int i = 0; i < m; i++)
        {
            int j = i + rng.Next(n - i);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        var rows = perm.AsSpan(0, m).ToArray();
        Array.Sort(rows);
        return rows;
    }
}
