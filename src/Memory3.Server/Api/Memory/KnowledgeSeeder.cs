using Memory3.Engine.Memory.Ingest;
using Memory3.Server.Hosting;

namespace Memory3.Server.Api.Memory;

/// <summary>
/// First start: when the bank is empty (and writable) and <c>Memory3:Bank:SeedKnowledge</c> is on, the model
/// directory's <c>knowledge/</c> folder (text and markdown) is ingested into the <c>default</c> namespace as an
/// ordinary ingestion job — the demo knowledge base of <c>models/memory3-tiny</c>. Requests are served meanwhile.
/// </summary>
public sealed partial class KnowledgeSeeder(ModelHost host, IngestJobs jobs, ILogger<KnowledgeSeeder> log) : IHostedService
{
    public const string Folder = "knowledge";

    /// <summary>The seeding job, once started (null when there was nothing to seed).</summary>
    public IngestJobs.Job? Job { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!host.BankSettings.SeedKnowledge || host.BankSettings.ReadOnly || host.BankDirectory is null) return Task.CompletedTask;
        string dir = Path.Combine(host.Directory, Folder);
        if (!Directory.Exists(dir)) return Task.CompletedTask;
        host.Engine.Ready.ContinueWith(t =>
        {
            if (t.IsFaulted || host.Bank is not { } bank) return;
            if (bank.Stats().References > 0) return;
            var docs = new DocumentReader().Read([dir]).ToList();
            if (docs.Count == 0) return;
            Job = jobs.Start(bank, docs, "default", owner: null);
            LogSeeding(log, dir, docs.Count, Job.Id);
        }, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "The bank is empty: ingesting the model's knowledge base {Directory} ({Documents} documents) as job {JobId}")]
    static partial void LogSeeding(ILogger log, string directory, int documents, string jobId);
}
