namespace Memory3.Engine.Memory.Retrieve;

/// <summary>Turns texts into L2-normalised dense vectors of <see cref="Dimensions"/> floats.</summary>
public interface IEmbedder : IDisposable
{
    int Dimensions { get; }
    /// <summary>Identifies the model (and its pooling); a persisted index built with another id is stale.</summary>
    string ModelId { get; }
    /// <summary>One L2-normalised vector per text, in input order.</summary>
    float[][] Embed(IReadOnlyList<string> texts);
}

/// <summary>One retrieved reference. <see cref="Score"/> is what the hits are ordered by (the fused score in hybrid
/// mode); <see cref="DenseScore"/> is the cosine similarity and <see cref="LexicalScore"/> the BM25 score, each null
/// when the reference was not among that list's candidates.</summary>
public sealed record RetrievalHit(string Id, string Namespace, string Text, double Score, double? DenseScore, double? LexicalScore);

/// <summary>Which ranking(s) a search uses.</summary>
public enum RetrievalMode
{
    /// <summary>Dense and BM25 lists fused by reciprocal rank fusion (plus the key-term bonus).</summary>
    Hybrid = 0,
    /// <summary>Cosine similarity of embeddings only.</summary>
    Dense = 1,
    /// <summary>BM25 only.</summary>
    Lexical = 2,
}

public sealed record RetrievalOptions
{
    public int TopK { get; init; } = 5;
    /// <summary>Only references in these namespaces are returned; null = all namespaces.</summary>
    public IReadOnlyCollection<string>? Namespaces { get; init; }
    /// <summary>Drop references whose LCS overlap with the query (paper eq. 6) exceeds <see cref="OverlapThreshold"/>.</summary>
    public bool OverlapFilter { get; init; } = false;
    public double OverlapThreshold { get; init; } = 2.0 / 3;
    public RetrievalMode Mode { get; init; } = RetrievalMode.Hybrid;
    /// <summary>Candidates taken from each list before fusion; 0 = 4 × TopK.</summary>
    public int Candidates { get; init; } = 0;

    public static RetrievalOptions Default { get; } = new();
}

public interface IMemoryRetriever
{
    /// <summary>Indexes references; idempotent by id (same id + same text and namespace is a no-op, changed text
    /// or namespace replaces the entry).</summary>
    void Add(IReadOnlyList<(string Id, string Namespace, string Text)> refs);
    bool Remove(string id);
    IReadOnlyList<RetrievalHit> Search(string query, RetrievalOptions options);
    /// <summary>One result list per query; the queries are embedded in one batch.</summary>
    IReadOnlyList<IReadOnlyList<RetrievalHit>> SearchMany(IReadOnlyList<string> queries, RetrievalOptions options);
    int Count { get; }
}
