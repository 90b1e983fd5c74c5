using Memory3.Engine.Inference;
using Memory3.Engine.Model;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Hosting;

/// <summary>The server's settings: section <c>Memory3</c> of <c>appsettings.json</c> (repository root) and the usual overrides.</summary>
public sealed class Memory3Options
{
    public const string Section = "Memory3";

    public ModelSettings Model { get; set; } = new();
    public EngineOptions Engine { get; set; } = new();
    public RedisSettings Redis { get; set; } = new();
    /// <summary>The explicit-memory bank; <c>Path</c> null: no bank (memory is off and /v1/memories answers 404).</summary>
    public BankSettings Bank { get; set; } = new();
    /// <summary>Bearer keys; none: the server serves everyone (and says so at start).</summary>
    public List<ApiKeySettings> ApiKeys { get; set; } = [];
    public TelemetrySettings Telemetry { get; set; } = new();
    public LimitSettings Limits { get; set; } = new();
}

public sealed class ModelSettings
{
    /// <summary>A Hugging Face style model directory; relative paths are looked up from the content root and its parents.</summary>
    public string Path { get; set; } = "models/tiny-random";
    /// <summary>The model id the API serves; default: the directory's name.</summary>
    public string? Name { get; set; }
    /// <summary><c>cpu</c> or <c>cuda</c>/<c>cuda:N</c>.</summary>
    public string Device { get; set; } = "cpu";
    /// <summary><c>bfloat16</c> or <c>float32</c>.</summary>
    public string DType { get; set; } = "bfloat16";
}

public sealed class RedisSettings
{
    /// <summary>StackExchange.Redis connection string for the memory hot tier (used when <c>Memory3:Bank:Redis</c> is not set).</summary>
    public string? ConnectionString { get; set; }
}

public sealed class BankSettings
{
    /// <summary>The bank directory (created when missing); relative paths resolve from the repository root. Null or empty: no bank.</summary>
    public string? Path { get; set; }
    /// <summary>StackExchange.Redis connection string for the bank's hot tier; null: <c>Memory3:Redis:ConnectionString</c>, or no Redis tier.</summary>
    public string? Redis { get; set; }
    /// <summary>Bound of the in-process tier of dequantized memories, in bytes; 0 turns it off.</summary>
    public long ProcessCacheBytes { get; set; } = 512L << 20;
    /// <summary>Retrieval embedder: <c>minilm</c> (all-MiniLM-L6-v2, the default) or <c>hashing</c> (a bag-of-words stand-in for tests).</summary>
    public string Embedder { get; set; } = "minilm";
    /// <summary>Most memories a request may ask for per chunk (memory.memories_per_chunk); 0: the model's memories_per_chunk. KV slots reserve room for them.</summary>
    public int MaxMemoriesPerChunk { get; set; }
    /// <summary>References encoded per engine work item while ingesting (smaller: generation waits less).</summary>
    public int IngestBatchReferences { get; set; } = 16;
    /// <summary>
    /// Open the bank read-only: a serving replica on a shared, read-only shard volume. Nothing in the bank folder is
    /// created, locked or changed; <c>POST</c> and <c>DELETE /v1/memories</c> answer 403; what the bank's writers (the
    /// ingestion Job) add is picked up every <see cref="RefreshSeconds"/>.
    /// </summary>
    public bool ReadOnly { get; set; }
    /// <summary>Seconds between two refreshes of the bank (new segments and records of its writers); 0: never.</summary>
    public double RefreshSeconds { get; set; } = 10;
    /// <summary>On first start, ingest the model directory's <c>knowledge/</c> folder into an empty, writable bank (the demo knowledge base).</summary>
    public bool SeedKnowledge { get; set; } = true;
    /// <summary>This server's writer id when it writes a bank that other writers (Job indexes) also write; null: the default writer. Ignored when read-only.</summary>
    public string? WriterId { get; set; }
}

public sealed class ApiKeySettings
{
    public string Key { get; set; } = "";
    /// <summary>A name for logs (never the key itself).</summary>
    public string? Name { get; set; }
    /// <summary>Memory namespaces the key may read and write; empty: <c>default</c>.</summary>
    public List<string> Namespaces { get; set; } = [];
}

public sealed class TelemetrySettings
{
    /// <summary>OTLP collector endpoint (e.g. http://localhost:4317); empty: no OTLP export.</summary>
    public string? OtlpEndpoint { get; set; }
    /// <summary><c>grpc</c> or <c>http/protobuf</c>.</summary>
    public string OtlpProtocol { get; set; } = "grpc";
    public string ServiceName { get; set; } = "memory3";
}

public sealed class LimitSettings
{
    /// <summary>Largest request body; larger bodies get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;
}

/// <summary>Checks every setting at start; each failure names its configuration key.</summary>
public sealed class Memory3OptionsValidator(IHostEnvironment env) : IValidateOptions<Memory3Options>
{
    public ValidateOptionsResult Validate(string? name, Memory3Options o)
    {
        const string P = Memory3Options.Section;
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.Model.Path)) errors.Add($"{P}:Model:Path must name a model directory");
        else if (!Directory.Exists(RepositoryLayout.ResolvePath(o.Model.Path, env.ContentRootPath)))
            errors.Add($"{P}:Model:Path: no model directory '{o.Model.Path}' (looked under {env.ContentRootPath} and its parents)");
        try
        {
            if (ModelOptions.ParseDType(o.Model.DType) == TorchSharp.torch.ScalarType.Float16 && !o.Model.Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase))
                errors.Add($"{P}:Model:DType float16 is not supported on the CPU; use bfloat16 or float32");
        }
        catch (ModelLoadException e) { errors.Add($"{P}:Model:DType: {e.Message}"); }
        if (!(o.Model.Device.Equals("cpu", StringComparison.OrdinalIgnoreCase) || o.Model.Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase)))
            errors.Add($"{P}:Model:Device must be cpu or cuda[:N] (got '{o.Model.Device}')");
        errors.AddRange(o.Engine.Validate($"{P}:Engine"));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < o.ApiKeys.Count; i++)
        {
            var k = o.ApiKeys[i];
            if (string.IsNullOrWhiteSpace(k.Key) || k.Key.Length < 8) errors.Add($"{P}:ApiKeys:{i}:Key must be at least 8 characters");
            else if (!seen.Add(k.Key)) errors.Add($"{P}:ApiKeys:{i}:Key duplicates an earlier key");
            for (int j = 0; j < k.Namespaces.Count; j++)
                if (string.IsNullOrWhiteSpace(k.Namespaces[j])) errors.Add($"{P}:ApiKeys:{i}:Namespaces:{j} must not be empty");
        }
        if (!string.IsNullOrWhiteSpace(o.Telemetry.OtlpEndpoint) && !Uri.TryCreate(o.Telemetry.OtlpEndpoint, UriKind.Absolute, out _))
            errors.Add($"{P}:Telemetry:OtlpEndpoint must be an absolute URI (got '{o.Telemetry.OtlpEndpoint}')");
        if (o.Telemetry.OtlpProtocol is not ("grpc" or "http/protobuf"))
            errors.Add($"{P}:Telemetry:OtlpProtocol must be grpc or http/protobuf (got '{o.Telemetry.OtlpProtocol}')");
        if (o.Bank.ProcessCacheBytes < 0) errors.Add($"{P}:Bank:ProcessCacheBytes must be 0 (off) or positive (got {o.Bank.ProcessCacheBytes})");
        if (o.Bank.Embedder is not ("minilm" or "hashing")) errors.Add($"{P}:Bank:Embedder must be minilm or hashing (got '{o.Bank.Embedder}')");
        if (o.Bank.MaxMemoriesPerChunk < 0) errors.Add($"{P}:Bank:MaxMemoriesPerChunk must be 0 (the model's) or positive (got {o.Bank.MaxMemoriesPerChunk})");
        if (o.Bank.IngestBatchReferences < 1) errors.Add($"{P}:Bank:IngestBatchReferences must be at least 1 (got {o.Bank.IngestBatchReferences})");
        if (o.Bank.RefreshSeconds < 0 || double.IsNaN(o.Bank.RefreshSeconds)) errors.Add($"{P}:Bank:RefreshSeconds must be 0 (never) or positive (got {o.Bank.RefreshSeconds})");
        if (Memory3.Engine.Memory.Store.DiskShardOptions.CheckWriterId(o.Bank.WriterId) is { } badWriter) errors.Add($"{P}:Bank:WriterId: {badWriter}");
        if (o.Limits.MaxRequestBodyBytes < 1024) errors.Add($"{P}:Limits:MaxRequestBodyBytes must be at least 1024 (got {o.Limits.MaxRequestBodyBytes})");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
