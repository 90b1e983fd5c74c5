using System.Text.Json;
using System.Text.Json.Serialization;

namespace Memory3.Server.Api.Memory;

/// <summary>The request's <c>memory</c> object (chat and completions). Omitted: memory on with the model's defaults when a bank is configured.</summary>
public sealed class MemoryRequestOptions
{
    /// <summary>Read explicit memory (default true when a bank is configured).</summary>
    public bool? Enabled { get; set; }
    /// <summary>Namespaces to read; omitted: every namespace the API key may use.</summary>
    public List<string>? Namespaces { get; set; }
    /// <summary>Memories attached per chunk (1..Memory3:Bank:MaxMemoriesPerChunk; default the model's memories_per_chunk).</summary>
    public int? MemoriesPerChunk { get; set; }
    /// <summary>Tokens per retrieval window (≥ 1; default the model's retrieval_interval, 64).</summary>
    public int? RetrievalInterval { get; set; }
}

/// <summary>The response's <c>memory</c> block: the references each window read, and counts.</summary>
public sealed record MemoryBlock(List<MemoryWindowDto> Windows, MemoryUsage Usage);

/// <summary>One window of one choice (<c>index</c>): phase <c>prompt</c> (start/end are prompt token indices) or <c>decode</c> (generated token indices), and the references it read.</summary>
public sealed record MemoryWindowDto(int Index, string Phase, int Start, int End, List<MemoryReference> References);

public sealed record MemoryReference(string Id, string Namespace, string Text, double Score);

/// <summary>Retrievals (one per prompt chunk plus one per decode refresh), memories fetched per tier, failed retrievals; summed over choices.</summary>
public sealed record MemoryUsage(int MemoryRefreshes, int ProcessHits, int RedisHits, int DiskHits, int RetrievalFailures);

/// <summary>POST /v1/memories with JSON: <c>text</c> or <c>texts</c>, and a namespace.</summary>
public sealed class IngestRequest
{
    public string? Text { get; set; }
    public List<string>? Texts { get; set; }
    /// <summary>Omitted: the key's first namespace (<c>default</c> without keys).</summary>
    public string? Namespace { get; set; }
}

public sealed record IngestError(string Source, string Error);

/// <summary>An ingestion job. Status: queued, running, succeeded (possibly with per-document errors) or failed.</summary>
public sealed record IngestJobDto(string Id, string Object, string Status, string Namespace, int TotalDocuments, int Documents, int References,
    int Skipped, int Failed, List<IngestError> Errors, long CreatedAt, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? FinishedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Error);

public sealed record MemoryDto(string Id, string Object, string Namespace, string Text);

public sealed record ListResponse<T>(string Object, List<T> Data, bool HasMore,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FirstId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? LastId);

public sealed record MemoryDeleted(string Id, string Object, bool Deleted);

public sealed class MemorySearchRequest
{
    public string? Query { get; set; }
    /// <summary>Omitted: every namespace the key may use.</summary>
    public List<string>? Namespaces { get; set; }
    /// <summary>1..100, default 5.</summary>
    public int? TopK { get; set; }
}

public sealed record MemorySearchHit(string Id, string Object, string Namespace, string Text, double Score, double? DenseScore, double? LexicalScore);

/// <summary>POST /v1/embeddings (OpenAI).</summary>
public sealed class EmbeddingRequest
{
    /// <summary>A string or a list of strings.</summary>
    public JsonElement? Input { get; set; }
    public string? Model { get; set; }
    /// <summary><c>float</c> (default) or <c>base64</c> (little-endian float32).</summary>
    public string? EncodingFormat { get; set; }
    public int? Dimensions { get; set; }
    public string? User { get; set; }
}

public sealed record EmbeddingDto(string Object, int Index, object Embedding);
public sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);
public sealed record EmbeddingResponse(string Object, List<EmbeddingDto> Data, string Model, EmbeddingUsage Usage);
