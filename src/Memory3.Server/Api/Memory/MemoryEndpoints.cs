using System.Text.Json;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Server.Api.OpenAi;
using Memory3.Server.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Api.Memory;

/// <summary>
/// <c>/v1/memories</c>: ingest (jobs), list, get, delete, search; and <c>/v1/embeddings</c>. Memories in a namespace
/// the key may not use answer 404, like ids that do not exist. Without a bank every memory endpoint answers 404.
/// </summary>
public static class MemoryEndpoints
{
    public static RouteGroupBuilder MapMemories(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/memories").WithTags("Memory");
        g.MapPost("", IngestAsync).WithName("IngestMemories")
            .WithSummary("Ingests text (JSON {texts|text, namespace}) or files (multipart/form-data: files, namespace) into the bank; returns a job (202); 403 when the bank is read-only")
            .Accepts<IngestRequest>("application/json", "multipart/form-data")
            .Produces<IngestJobDto>(202).ProducesOpenAiErrors().Produces<OpenAiErrorResponse>(403)
            .WithExample("""{"texts":["The Eiffel Tower is 330 metres tall.","Memory3 stores references as sparse key-values."],"namespace":"default"}""", null);
        g.MapGet("/jobs/{id}", GetJob).WithName("GetIngestJob").WithSummary("An ingestion job's progress")
            .ProducesOpenAiErrors()
            .WithExample(null, """{"id":"ingest-0f1e2d3c4b5a69788796a5b4","object":"memory.ingest_job","status":"succeeded","namespace":"default","total_documents":2,"documents":2,"references":2,"skipped":0,"failed":0,"errors":[],"created_at":1767225600,"finished_at":1767225601}""");
        g.MapGet("", ListAsync).WithName("ListMemories").WithSummary("Lists references, ordered by id: ?namespace=&limit=(1..100, 20)&after=<id>")
            .ProducesOpenAiErrors()
            .WithExample(null, """{"object":"list","data":[{"id":"3f2a...","object":"memory","namespace":"default","text":"The Eiffel Tower is 330 metres tall."}],"has_more":false,"first_id":"3f2a...","last_id":"3f2a..."}""");
        g.MapGet("/{id}", GetAsync).WithName("GetMemory").WithSummary("One reference").ProducesOpenAiErrors()
            .WithExample(null, """{"id":"3f2a...","object":"memory","namespace":"default","text":"The Eiffel Tower is 330 metres tall."}""");
        g.MapDelete("/{id}", DeleteAsync).WithName("DeleteMemory").WithSummary("Deletes a reference (a tombstone on disk; gone from every tier and the index); 403 when the bank is read-only")
            .ProducesOpenAiErrors().Produces<OpenAiErrorResponse>(403).WithExample(null, """{"id":"3f2a...","object":"memory.deleted","deleted":true}""");
        g.MapPost("/search", SearchAsync).WithName("SearchMemories").WithSummary("Hybrid (dense + BM25) search over the namespaces the key may use")
            .Accepts<MemorySearchRequest>("application/json").ProducesOpenAiErrors()
            .WithExample("""{"query":"How tall is the Eiffel Tower?","top_k":3}""",
                """{"object":"list","data":[{"id":"3f2a...","object":"memory.search_result","namespace":"default","text":"The Eiffel Tower is 330 metres tall.","score":0.0328,"dense_score":0.71,"lexical_score":3.2}],"has_more":false,"first_id":"3f2a...","last_id":"3f2a..."}""");
        v1.MapPost("/embeddings", EmbeddingsAsync).WithName("CreateEmbeddings").WithTags("OpenAI")
            .WithSummary("Embeds text with the retriever's embedder (all-MiniLM-L6-v2)")
            .Accepts<EmbeddingRequest>("application/json").Produces<EmbeddingResponse>().ProducesOpenAiErrors()
            .WithExample("""{"input":["hello world"],"model":"sentence-transformers/all-MiniLM-L6-v2:mean:256"}""",
                """{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.012,-0.034]}],"model":"sentence-transformers/all-MiniLM-L6-v2:mean:256","usage":{"prompt_tokens":2,"total_tokens":2}}""");
        return v1;
    }

    private static MemoryBank Bank(ModelHost host)
    {
        if (host.BankDirectory is null) throw MemoryMapping.NoBank();
        return host.Bank ?? throw new ApiException(503, "the memory bank is opening", null, "service_unavailable", "model_not_ready") { RetryAfterSeconds = 1 };
    }

    public static async Task<Accepted<IngestJobDto>> IngestAsync(HttpContext http, ModelHost host, IngestJobs jobs, IOptions<Memory3Options> options)
    {
        var bank = Bank(host);
        if (bank.ReadOnly) throw MemoryMapping.ReadOnlyBank();
        var principal = MemoryMapping.Principal(http);
        var docs = new List<Document>();
        string ns;
        if (http.Request.HasFormContentType)
        {
            IFormCollection form;
            try { form = await http.Request.ReadFormAsync(http.RequestAborted); }
            catch (InvalidDataException e) { throw ApiException.BadRequest($"the multipart body is invalid: {e.Message}"); }
            ns = MemoryMapping.WritableNamespace(principal, form.TryGetValue("namespace", out var nsv) ? nsv.ToString() : null);
            var reader = new DocumentReader();
            foreach (var f in form.Files)
            {
                using var ms = new MemoryStream();
                await f.CopyToAsync(ms, http.RequestAborted);
                docs.Add(reader.FromBytes(string.IsNullOrEmpty(f.FileName) ? f.Name : f.FileName, ms.ToArray()));
            }
            foreach (var (key, value) in form)
                if (key is "text" or "texts") foreach (var t in value) docs.Add(TextDocument($"{key}[{docs.Count}]", t));
            if (docs.Count == 0) throw ApiException.BadRequest("the form has no files (field 'files') and no 'text'", "files");
        }
        else
        {
            var body = await OpenAiJson.ReadBodyAsync<IngestRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
            ns = MemoryMapping.WritableNamespace(principal, body.Namespace);
            if (body.Text is not null) docs.Add(TextDocument("text", body.Text));
            if (body.Texts is not null) for (int i = 0; i < body.Texts.Count; i++) docs.Add(TextDocument($"texts[{i}]", body.Texts[i]));
            if (docs.Count == 0) throw ApiException.BadRequest("give 'text' or a non-empty 'texts' list", "texts");
        }
        var job = jobs.Start(bank, docs, ns, principal.KeyName);
        return TypedResults.Accepted($"/v1/memories/jobs/{job.Id}", job.Dto());
    }

    private static Document TextDocument(string source, string? text) =>
        string.IsNullOrWhiteSpace(text) ? new Document(source, null, "empty text") : new Document(source, text, null);

    public static Ok<IngestJobDto> GetJob(string id, HttpContext http, ModelHost host, IngestJobs jobs)
    {
        Bank(host);
        var p = MemoryMapping.Principal(http);
        var job = jobs.Get(id);
        if (job is null || (!p.Anonymous && job.Owner != p.KeyName))
            throw new ApiException(404, $"No ingestion job '{id}'.", "id", "invalid_request_error", "job_not_found");
        return TypedResults.Ok(job.Dto());
    }

    public static Ok<ListResponse<MemoryDto>> ListAsync(HttpContext http, ModelHost host, string? @namespace, int? limit, string? after)
    {
        var bank = Bank(host);
        var p = MemoryMapping.Principal(http);
        int n = limit ?? 20;
        if (n < 1 || n > 100) throw ApiException.BadRequest($"limit must be between 1 and 100, got {n}", "limit");
        IReadOnlyCollection<string>? nss = @namespace is null ? (p.Anonymous ? null : p.Namespaces) : MemoryMapping.ReadableNamespaces(p, [@namespace], "namespace");
        var page = bank.Disk.EnumerateAll()
            .Where(r => nss is null || nss.Contains(r.Namespace))
            .Where(r => after is null || string.CompareOrdinal(r.Id, after) > 0)
            .Select(r => new MemoryDto(r.Id, "memory", r.Namespace, r.Text))
            .OrderBy(r => r.Id, StringComparer.Ordinal)
            .Take(n + 1).ToList();
        bool more = page.Count > n;
        if (more) page.RemoveAt(n);
        return TypedResults.Ok(new ListResponse<MemoryDto>("list", page, more, page.FirstOrDefault()?.Id, page.LastOrDefault()?.Id));
    }

    private static async Task<MemoryRecord> FindAsync(MemoryBank bank, ApiPrincipal p, string id, CancellationToken ct)
    {
        var found = (await bank.Disk.GetManyAsync([id], ct))[0];
        if (found is null || !MemoryMapping.MayRead(p, found.Namespace))
            throw new ApiException(404, $"No memory '{id}'.", "id", "invalid_request_error", "memory_not_found");
        return found;
    }

    public static async Task<Ok<MemoryDto>> GetAsync(string id, HttpContext http, ModelHost host)
    {
        var r = await FindAsync(Bank(host), MemoryMapping.Principal(http), id, http.RequestAborted);
        return TypedResults.Ok(new MemoryDto(r.Id, "memory", r.Namespace, r.Text));
    }

    public static async Task<Ok<MemoryDeleted>> DeleteAsync(string id, HttpContext http, ModelHost host)
    {
        var bank = Bank(host);
        if (bank.ReadOnly) throw MemoryMapping.ReadOnlyBank();
        var r = await FindAsync(bank, MemoryMapping.Principal(http), id, http.RequestAborted);
        await bank.DeleteAsync(r.Id, CancellationToken.None);
        return TypedResults.Ok(new MemoryDeleted(r.Id, "memory.deleted", true));
    }

    public static async Task<Ok<ListResponse<MemorySearchHit>>> SearchAsync(HttpContext http, ModelHost host, IOptions<Memory3Options> options)
    {
        var bank = Bank(host);
        var body = await OpenAiJson.ReadBodyAsync<MemorySearchRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
        if (string.IsNullOrWhiteSpace(body.Query)) throw ApiException.BadRequest("query must be a non-empty string", "query");
        int k = body.TopK ?? 5;
        if (k < 1 || k > 100) throw ApiException.BadRequest($"top_k must be between 1 and 100, got {k}", "top_k");
        var nss = MemoryMapping.ReadableNamespaces(MemoryMapping.Principal(http), body.Namespaces, "namespaces");
        var hits = await Task.Run(() => bank.Search(body.Query, nss, k), http.RequestAborted);
        var data = hits.Select(h => new MemorySearchHit(h.Id, "memory.search_result", h.Namespace, h.Text, h.Score, h.DenseScore, h.LexicalScore)).ToList();
        return TypedResults.Ok(new ListResponse<MemorySearchHit>("list", data, false, data.FirstOrDefault()?.Id, data.LastOrDefault()?.Id));
    }

    public static async Task<Ok<EmbeddingResponse>> EmbeddingsAsync(HttpContext http, ModelHost host, IOptions<Memory3Options> options)
    {
        var body = await OpenAiJson.ReadBodyAsync<EmbeddingRequest>(http.Request, options.Value.Limits.MaxRequestBodyBytes);
        var inputs = new List<string>();
        if (body.Input is not { } input || input.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest("input is required", "input");
        if (input.ValueKind == JsonValueKind.String) inputs.Add(input.GetString()!);
        else if (input.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var e in input.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.String) throw ApiException.BadRequest($"input[{i}] must be a string (token-id inputs are not supported)", $"input[{i}]");
                inputs.Add(e.GetString()!);
                i++;
            }
        }
        else throw ApiException.BadRequest("input must be a string or a list of strings", "input");
        if (inputs.Count == 0) throw ApiException.BadRequest("input must not be empty", "input");
        if (inputs.Count > 2048) throw ApiException.BadRequest($"input has {inputs.Count} items; at most 2048", "input");
        for (int i = 0; i < inputs.Count; i++) if (inputs[i].Length == 0) throw ApiException.BadRequest($"input[{i}] is empty", $"input[{i}]");
        string format = body.EncodingFormat ?? "float";
        if (format is not ("float" or "base64")) throw ApiException.BadRequest($"encoding_format must be float or base64, got '{format}'", "encoding_format");
        var embedder = host.Embedder;
        if (body.Dimensions is int d && d != embedder.Dimensions)
            throw ApiException.BadRequest($"dimensions must be {embedder.Dimensions} for {embedder.ModelId}", "dimensions");
        if (!string.IsNullOrEmpty(body.Model) && body.Model != embedder.ModelId && body.Model != host.Id && !embedder.ModelId.StartsWith(body.Model + ":", StringComparison.Ordinal))
            throw new ApiException(404, $"The model '{body.Model}' does not exist (embeddings are served by '{embedder.ModelId}').", "model", "invalid_request_error", "model_not_found");
        var vectors = await Task.Run(() => { lock (embedder) return embedder.Embed(inputs); }, http.RequestAborted);
        var data = new List<EmbeddingDto>(vectors.Length);
        for (int i = 0; i < vectors.Length; i++)
        {
            object value = format == "float" ? vectors[i] : Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vectors[i].AsSpan()));
            data.Add(new EmbeddingDto("embedding", i, value));
        }
        int tokens = inputs.Sum(t => host.Tokenizer.Encode(t, addSpecialTokens: false).Length);
        return TypedResults.Ok(new EmbeddingResponse("list", data, embedder.ModelId, new EmbeddingUsage(tokens, tokens)));
    }
}
