using Memory3.Engine.Memory;
using Memory3.Engine.Model.Sampling;

namespace Memory3.Engine.Inference;

/// <summary>What the engine must know about the served model before it is loaded (for validation and the API).</summary>
/// <param name="Id">The model name the API serves.</param>
/// <param name="VocabSize">Rows of the logits (config vocab_size).</param>
/// <param name="MaxModelLen">Context length served: prompt + completion.</param>
public sealed record EngineModelInfo(string Id, int VocabSize, int MaxModelLen, IReadOnlyList<int> EosTokenIds)
{
    /// <summary>How the model reads explicit memory; null: it has no memory keys (every sequence uses the plain layout).</summary>
    public EngineMemoryInfo? Memory { get; init; }
}

/// <summary>A memory model's reading conventions (DESIGN §4), as the engine lays out a sequence's KV slot.</summary>
/// <param name="Prefix">The reference prefix's token ids (the attention sink, positions 0..P-1).</param>
/// <param name="MaxMemoriesPerChunk">Most memories a request may attach per chunk (the KV slots reserve room for them).</param>
public sealed record EngineMemoryInfo(int[] Prefix, int TokensPerHead, int ReferenceMaxTokens, int MemoriesPerChunk, int RetrievalInterval, int MaxMemoriesPerChunk)
{
    /// <summary>KV entries a slot needs beyond the context: the prefix and the largest memory region.</summary>
    public int SlotOverhead => Prefix.Length + MaxMemoriesPerChunk * TokensPerHead;
}

/// <summary>A request's explicit-memory options (the API's <c>memory</c> object). Null fields take the model's defaults.</summary>
public sealed record EngineMemoryOptions(bool Enabled = true, IReadOnlyCollection<string>? Namespaces = null, int? MemoriesPerChunk = null, int? RetrievalInterval = null);

/// <summary>What one choice read from memory: its windows with citations, and counts.</summary>
/// <param name="Refreshes">Retrievals made (one per prompt chunk plus one per decode refresh).</param>
/// <param name="Failures">Retrievals that failed (the window then read no memory).</param>
public sealed record SequenceMemoryReport(IReadOnlyList<MemoryWindow> Windows, int Refreshes, int ProcessHits, int RedisHits, int DiskHits, int Failures);

/// <summary>
/// One generation request: a tokenized prompt, sampling parameters and the number of choices. Each of the
/// <see cref="N"/> choices is a sequence of its own sharing the prompt (each is prefilled).
/// </summary>
public sealed record EngineRequest
{
    public required int[] PromptTokens { get; init; }
    public required SamplingParams Sampling { get; init; }
    public int N { get; init; } = 1;
    /// <summary>Free-form id for logs and spans.</summary>
    public string? Id { get; init; }
    /// <summary>Explicit memory; null: on with the model's defaults when the engine has a memory source.</summary>
    public EngineMemoryOptions? Memory { get; init; }
}

/// <summary>
/// One event of one choice: a generated token with the text it completes (possibly empty while a character or a
/// possible stop string is held back), its logprob (NaN when not asked) and alternatives; the last event of a choice
/// carries <see cref="Finish"/>. An event with <see cref="Error"/> set ends the choice with a failure (TokenId -1).
/// A finishing event of a sequence that read memory carries its <see cref="Memory"/> report.
/// </summary>
public sealed record TokenEvent(int Index, int TokenId, string Text, float Logprob, TokenLogprob[]? TopLogprobs, FinishReason? Finish, string? Error = null, SequenceMemoryReport? Memory = null)
{
    public bool IsError => Error is not null;
}

/// <summary>A snapshot of the engine's state (for tests, health and metrics).</summary>
public sealed record EngineStats(int Running, int Waiting, int FreeSlots, int TotalSlots, long Steps, long FailedSteps, long AbortedSequences, long FinishedSequences);

/// <summary>The request is invalid for this model (prompt too long, bad n...). <see cref="ArgumentException.ParamName"/> is the API field.</summary>
public sealed class EngineRequestException(string param, string message, string? code = null) : ArgumentException(message, param)
{
    private readonly string _message = message;
    public override string Message => _message;
    public string? Code { get; } = code;
}

/// <summary>The bounded queue is full: answer 429 with Retry-After.</summary>
public sealed class EngineOverloadedException(int retryAfterSeconds)
    : Exception($"the server is overloaded: the request queue is full; retry after {retryAfterSeconds} s")
{
    public int RetryAfterSeconds { get; } = retryAfterSeconds;
}

/// <summary>The model is still loading (or failed to load): answer 503.</summary>
public sealed class EngineNotReadyException(string message, int retryAfterSeconds) : Exception(message)
{
    public int RetryAfterSeconds { get; } = retryAfterSeconds;
}

/// <summary>The contract the API sees: tokens in, events out. No tensor crosses it.</summary>
public interface IInferenceEngine
{
    EngineModelInfo Model { get; }
    EngineOptions Options { get; }
    /// <summary>True once the model is loaded and the engine thread is stepping.</summary>
    bool IsReady { get; }
    /// <summary>Why the model could not be loaded, or null.</summary>
    string? LoadError { get; }
    EngineStats GetStats();

    /// <summary>
    /// Validates and admits the request at once (throwing <see cref="SamplingParamException"/>,
    /// <see cref="EngineRequestException"/>, <see cref="EngineOverloadedException"/> or
    /// <see cref="EngineNotReadyException"/> from this call, before any enumeration), then streams its events.
    /// Cancelling <paramref name="ct"/> or disposing the enumerator early aborts the request's sequences at the next
    /// step and frees their slots.
    /// </summary>
    IAsyncEnumerable<TokenEvent> GenerateAsync(EngineRequest req, CancellationToken ct = default);
}
