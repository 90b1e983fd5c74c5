using Memory3.Engine.Memory.Retrieve;

namespace Memory3.Engine.Tests.Memory.Retrieve;

/// <summary>
/// A deterministic embedder for fusion/filter tests: texts listed in <see cref="Pinned"/> get the given (normalised)
/// vector, anything else the hashing embedder's vector. Counts texts embedded, to check re-embedding.
/// </summary>
public sealed class FakeEmbedder(int dimensions = 64, string modelId = "fake") : IEmbedder
{
    readonly HashingEmbedder _fallback = new(dimensions);
    public Dictionary<string, float[]> Pinned { get; } = new(StringComparer.Ordinal);
    public int Dimensions { get; } = dimensions;
    public string ModelId { get; } = modelId;
    public int TextsEmbedded;
    public int Calls;

    /// <summary>A unit vector along <paramref name="axis"/> with a little of <paramref name="other"/>.</summary>
    public float[] Axis(int axis, int other = -1, float mix = 0)
    {
        var v = new float[Dimensions];
        v[axis] = 1;
        if (other >= 0) v[other] = mix;
        return v;
    }

    public void Pin(string text, float[] v) => Pinned[text] = v;

    public float[][] Embed(IReadOnlyList<string> texts)
    {
        Interlocked.Increment(ref Calls);
        Interlocked.Add(ref TextsEmbedded, texts.Count);
        var fb = _fallback.Embed(texts);
        for (int i = 0; i < texts.Count; i++)
            if (Pinned.TryGetValue(texts[i], out var v))
            {
                var c = (float[])v.Clone();
                double n = Math.Sqrt(c.Sum(x => (double)x * x));
                for (int j = 0; j < c.Length; j++) c[j] = (float)(c[j] / n);
                fb[i] = c;
            }
        return fb;
    }

    public void Dispose() { }
}
