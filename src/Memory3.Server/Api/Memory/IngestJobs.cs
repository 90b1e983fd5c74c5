using System.Collections.Concurrent;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.Memory;

/// <summary>
/// Ingestion jobs. Encoding uses the model's tensors, so every piece runs on the engine thread as a work item
/// between steps: a document is cut at paragraph boundaries into pieces of about <see cref="PieceChars"/> characters,
/// so that a long document never holds the engine for long. Jobs live in memory (lost on restart).
/// </summary>
public sealed class IngestJobs(ModelHost host, ILogger<IngestJobs> log)
{
    public const int PieceChars = 4000;
    private readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);

    public sealed class Job(string id, string ns, string? owner, int total)
    {
        public readonly object Gate = new();
        public string Id { get; } = id;
        public string Namespace { get; } = ns;
        public string? Owner { get; } = owner;
        public int Total { get; } = total;
        public string Status = "queued";
        public int Documents, References, Skipped;
        public readonly List<IngestError> Errors = [];
        public long Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        public long? Finished;
        public string? Error;

        public IngestJobDto Dto()
        {
            lock (Gate)
                return new IngestJobDto(Id, "memory.ingest_job", Status, Namespace, Total, Documents, References, Skipped, Errors.Count, Errors.ToList(), Created, Finished, Error);
        }
    }

    public Job? Get(string id) => _jobs.TryGetValue(id, out var j) ? j : null;

    public Job Start(MemoryBank bank, IReadOnlyList<Document> documents, string ns, string? owner)
    {
        var job = new Job("ingest-" + Guid.NewGuid().ToString("N")[..24], ns, owner, documents.Count);
        _jobs[job.Id] = job;
        _ = Task.Run(() => RunAsync(bank, job, documents));
        return job;
    }

    private async Task RunAsync(MemoryBank bank, Job job, IReadOnlyList<Document> documents)
    {
        lock (job.Gate) job.Status = "running";
        try
        {
            foreach (var doc in documents)
            {
                if (!doc.Ok) { lock (job.Gate) job.Errors.Add(new IngestError(doc.Source, doc.Error!)); continue; }
                int refs = 0, skipped = 0;
                string? error = null;
                foreach (var piece in Pieces(doc.Text!))
                {
                    try
                    {
                        var r = await host.Engine.RunOnEngineThreadAsync(_ => bank.Ingest([new Document(doc.Source, piece, null)], job.Namespace, saveIndex: false));
                        refs += r.References;
                        skipped += r.Skipped;
                        if (r.Errors.Count > 0) { error = r.Errors[0].Error; break; }
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        error = e.Message;
                        break;
                    }
                    lock (job.Gate) { job.References += refs; job.Skipped += skipped; refs = 0; skipped = 0; }
                }
                lock (job.Gate)
                {
                    job.References += refs; job.Skipped += skipped;
                    if (error is null) job.Documents++;
                    else job.Errors.Add(new IngestError(doc.Source, error));
                }
            }
            bank.SaveIndex();   // once per job, off the engine thread
            lock (job.Gate) { job.Status = "succeeded"; job.Finished = DateTimeOffset.UtcNow.ToUnixTimeSeconds(); }
        }
        catch (Exception e)
        {
            LogJobFailed(log, job.Id, e);
            lock (job.Gate) { job.Status = "failed"; job.Error = e.Message; job.Finished = DateTimeOffset.UtcNow.ToUnixTimeSeconds(); }
        }
    }

    /// <summary>Cuts text at paragraph (else line) boundaries into pieces of about <see cref="PieceChars"/> characters.</summary>
    public static IEnumerable<string> Pieces(string text)
    {
        int start = 0;
        while (text.Length - start > PieceChars)
        {
            int cut = text.LastIndexOf("\n\n", start + PieceChars, PieceChars, StringComparison.Ordinal);
            if (cut <= start) cut = text.LastIndexOf('\n', start + PieceChars, PieceChars);
            if (cut <= start) cut = text.LastIndexOf(". ", start + PieceChars, PieceChars, StringComparison.Ordinal) is int d && d > start ? d + 1 : start + PieceChars;
            yield return text[start..cut];
            start = cut;
        }
        if (start < text.Length) yield return text[start..];
    }

    private static void LogJobFailed(ILogger log, string id, Exception e) => log.LogError(e, "Ingestion job {JobId} failed", id);
}
