using Memory3.Engine.Inference;
using Memory3.Server.Api.OpenAi;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.Memory;

/// <summary>The memory extension ↔ the engine, and the namespace rules of API keys.</summary>
public static class MemoryMapping
{
    public static ApiPrincipal Principal(HttpContext http) =>
        http.Features.Get<ApiPrincipal>() ?? new ApiPrincipal(null, ["default"], Anonymous: true);

    /// <summary>
    /// The namespaces a request may read: the requested ones (each must be the key's, else 404: another key's memory
    /// does not exist for this key), or all the key's. Without keys every namespace is open (null: all).
    /// </summary>
    public static IReadOnlyCollection<string>? ReadableNamespaces(ApiPrincipal p, List<string>? requested, string param)
    {
        if (requested is null) return p.Anonymous ? null : p.Namespaces;
        for (int i = 0; i < requested.Count; i++)
        {
            var ns = requested[i];
            if (string.IsNullOrWhiteSpace(ns)) throw ApiException.BadRequest($"{param}[{i}] must be a non-empty string", $"{param}[{i}]");
            if (!p.Anonymous && !p.Namespaces.Contains(ns, StringComparer.Ordinal)) throw NamespaceNotFound(ns, param);
        }
        return requested.Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary>The namespace a write goes to: the given one (the key's, else 404), or the key's first.</summary>
    public static string WritableNamespace(ApiPrincipal p, string? ns, string param = "namespace")
    {
        if (ns is null) return p.Anonymous ? "default" : p.Namespaces[0];
        if (string.IsNullOrWhiteSpace(ns)) throw ApiException.BadRequest("namespace must be a non-empty string", param);
        if (!p.Anonymous && !p.Namespaces.Contains(ns, StringComparer.Ordinal)) throw NamespaceNotFound(ns, param);
        return ns;
    }

    public static bool MayRead(ApiPrincipal p, string ns) => p.Anonymous || p.Namespaces.Contains(ns, StringComparer.Ordinal);

    public static ApiException NamespaceNotFound(string ns, string param) =>
        new(404, $"The memory namespace '{ns}' does not exist.", param, "invalid_request_error", "namespace_not_found");

    /// <summary>403: the bank is open read-only (a serving replica); writes go through the bank's writers.</summary>
    public static ApiException ReadOnlyBank(string? message = null) =>
        new(403, message ?? "This server's memory bank is read-only (Memory3:Bank:ReadOnly): memories cannot be ingested or deleted here. " +
            "Ingest through a writer of the bank (the ingestion Job, or a server that opens it read-write); this server picks new memories up by itself.",
            null, "permission_error", "memory_bank_read_only");

    public static ApiException NoBank() =>
        new(404, "This server has no memory bank: set Memory3:Bank:Path (and serve a model with memory keys) to use /v1/memories.", null, "invalid_request_error", "memory_bank_not_configured");

    /// <summary>Validates the request's memory object (the engine reads memory when it has a bank, the model memory keys, and Enabled).</summary>
    public static EngineMemoryOptions ToEngine(MemoryRequestOptions? m, ModelHost host, HttpContext http)
    {
        var info = host.Engine.Model.Memory;
        if (m is not null)
        {
            if (m.RetrievalInterval is int r && (r < 1 || r > host.MaxModelLen))
                throw ApiException.BadRequest($"memory.retrieval_interval must be between 1 and {host.MaxModelLen}, got {r}", "memory.retrieval_interval");
            int maxPer = info?.MaxMemoriesPerChunk ?? 0;
            if (m.MemoriesPerChunk is int k && (k < 1 || (info is not null && k > maxPer)))
                throw ApiException.BadRequest(info is null ? $"memory.memories_per_chunk must be at least 1, got {k}" : $"memory.memories_per_chunk must be between 1 and {maxPer}, got {k}", "memory.memories_per_chunk");
        }
        var namespaces = ReadableNamespaces(Principal(http), m?.Namespaces, "memory.namespaces");
        return new EngineMemoryOptions(m?.Enabled ?? true, namespaces, m?.MemoriesPerChunk, m?.RetrievalInterval);
    }

    /// <summary>Gathers the memory reports of a request's choices (from their finishing events).</summary>
    public sealed class Collector
    {
        private readonly SortedDictionary<int, SequenceMemoryReport> _reports = [];
        public void Add(TokenEvent e) { if (e.Memory is { } r) _reports[e.Index] = r; }
        public bool Any => _reports.Count > 0;

        public MemoryBlock? Block()
        {
            if (_reports.Count == 0) return null;
            var windows = new List<MemoryWindowDto>();
            int refreshes = 0, process = 0, redis = 0, disk = 0, failures = 0;
            foreach (var (index, r) in _reports)
            {
                foreach (var w in r.Windows)
                    windows.Add(new MemoryWindowDto(index, w.Phase, w.Start, w.End, w.Citations.Select(c => new MemoryReference(c.Id, c.Namespace, c.Text, c.Score)).ToList()));
                refreshes += r.Refreshes; process += r.ProcessHits; redis += r.RedisHits; disk += r.DiskHits; failures += r.Failures;
            }
            return new MemoryBlock(windows, new MemoryUsage(refreshes, process, redis, disk, failures));
        }
    }
}
