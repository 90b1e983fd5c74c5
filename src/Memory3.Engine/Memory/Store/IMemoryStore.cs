namespace Memory3.Engine.Memory.Store;

/// <summary>A tier that holds <see cref="MemoryRecord"/> bytes (disk shards, Redis). It never interprets the payload.</summary>
public interface IMemoryStore
{
    /// <summary>"disk" or "redis": the value of the <c>tier</c> tag on metrics and spans.</summary>
    string Tier { get; }

    /// <summary>One batched read; the result has one slot per id, null where the memory is absent (or unreadable).</summary>
    ValueTask<MemoryRecord?[]> GetManyAsync(IReadOnlyList<string> ids, CancellationToken ct = default);

    /// <summary>Writes the records. On disk they are durable (fsync) when the call returns.</summary>
    ValueTask PutManyAsync(IReadOnlyList<MemoryRecord> records, CancellationToken ct = default);

    /// <summary>Removes one memory; true when it was present.</summary>
    ValueTask<bool> DeleteAsync(string id, CancellationToken ct = default);
}

/// <summary>A memory bank could not be opened or written (bad directory, disk full, bank in use).</summary>
public class MemoryStoreException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>The bank on disk was made for another model/quantizer: it must never be served.</summary>
public sealed class BankFingerprintMismatchException(string bankDir, string expected, string found, string segment, long offset)
    : MemoryStoreException(
        $"Memory bank '{bankDir}' belongs to bank fingerprint '{found}' (record at {Path.GetFileName(segment)} offset {offset}), " +
        $"but this model expects fingerprint '{expected}'. A bank made for another model, memory config or quantizer cannot be served; " +
        "point the server at the matching bank or re-ingest the references.")
{
    public string BankDir { get; } = bankDir;
    public string ExpectedFingerprint { get; } = expected;
    public string FoundFingerprint { get; } = found;
}
