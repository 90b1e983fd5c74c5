namespace Memory3.Engine.Memory.Quantize;

/// <summary>
/// How to train a vector quantizer. A code is <see cref="ResidualStages"/> bytes of full-vector residual k-means
/// stages followed by <see cref="SubQuantizers"/> bytes of product quantization (every codebook has 256 centroids).
/// The default (PCA rotation with eigenvalue allocation, then PQ 16×8) measured best within 16 bytes for 80 dims
/// (docs/quantization.md).
/// </summary>
public sealed record QuantizerOptions
{
    /// <summary>Centroids per codebook: 256, so every code is one byte.</summary>
    public const int Centroids = 256;

    /// <summary>Full-dimension residual k-means stages before PQ (one byte each).</summary>
    public int ResidualStages { get; init; }

    /// <summary>Product-quantizer sub-vectors (one byte each); dimensions are split as evenly as possible.</summary>
    public int SubQuantizers { get; init; } = 16;

    /// <summary>Rotation applied to the vector (after the residual stages) before product quantization.</summary>
    public QuantizerRotation Rotation { get; init; } = QuantizerRotation.Pca;

    /// <summary>Lloyd iterations per codebook.</summary>
    public int Iterations { get; init; } = 16;

    /// <summary>Training vectors per quantizer (a seeded random subsample of what is offered).</summary>
    public int MaxTrainingVectors { get; init; } = 65_536;

    public int BytesPerVector => ResidualStages + SubQuantizers;

    public void Validate(int dim)
    {
        if (ResidualStages < 0 || SubQuantizers < 0 || BytesPerVector == 0)
            throw new ArgumentException($"A quantizer needs at least one stage or sub-quantizer (stages {ResidualStages}, sub-quantizers {SubQuantizers}).");
        if (SubQuantizers > dim) throw new ArgumentException($"{SubQuantizers} sub-quantizers cannot split {dim} dimensions.");
        if (Iterations < 0) throw new ArgumentOutOfRangeException(nameof(Iterations));
        if (MaxTrainingVectors < 1) throw new ArgumentOutOfRangeException(nameof(MaxTrainingVectors));
    }

    /// <summary>A FAISS-like description, e.g. "PCA-PQ16x8" or "RQ2x8-PCA-PQ14x8".</summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (ResidualStages > 0) parts.Add($"RQ{ResidualStages}x8");
        if (SubQuantizers > 0)
        {
            if (Rotation != QuantizerRotation.None) parts.Add(Rotation == QuantizerRotation.Pca ? "PCA" : "ROT");
            parts.Add($"PQ{SubQuantizers}x8");
        }
        return string.Join('-', parts);
    }
}
