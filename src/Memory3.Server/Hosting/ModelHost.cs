using Memory3.Engine.Inference;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Retrieve;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Hosting;

/// <summary>
/// The served model as the API sees it: its id, config, tokenizer, chat formatter and the engine. The config and
/// tokenizer load at start (cheap); the weights load on the engine thread (<c>/ready</c> answers 503 meanwhile).
/// </summary>
public sealed class ModelHost : IDisposable
{
    public ModelHost(IOptions<Memory3Options> options, IHostEnvironment env, IModelRunnerFactory? runnerFactory = null,
        Func<IModelRunner, IMemorySource?>? memorySourceFactory = null, ILoggerFactory? loggerFactory = null)
    {
        _loggerFactory = loggerFactory;
        var o = options.Value;
        Directory = RepositoryLayout.ResolvePath(o.Model.Path, env.ContentRootPath);
        Config = ModelConfig.Load(Directory);
        Tokenizer = TokenizerLoader.Load(Directory);
        Id = string.IsNullOrWhiteSpace(o.Model.Name) ? Path.GetFileName(Directory.TrimEnd('/', '\\')) : o.Model.Name!;
        ChatFormatter = ChatFormatters.For(Tokenizer);
        int maxLen = Config.MaxPositionEmbeddings;
        if (o.Engine.MaxModelLen > 0)
        {
            if (o.Engine.MaxModelLen > Config.MaxPositionEmbeddings)
                throw new OptionsValidationException(Memory3Options.Section, typeof(Memory3Options),
                    [$"{Memory3Options.Section}:Engine:MaxModelLen ({o.Engine.MaxModelLen}) exceeds the model's max_position_embeddings ({Config.MaxPositionEmbeddings})"]);
            maxLen = o.Engine.MaxModelLen;
        }
        MaxModelLen = maxLen;
        var factory = runnerFactory ?? new CausalLMRunnerFactory(Directory, new ModelOptions { Device = o.Model.Device, DType = o.Model.DType });
        var info = new EngineModelInfo(Id, Config.VocabSize, maxLen, Config.EosTokenIds);
        Func<IModelRunner, IMemorySource?>? memoryFactory = null;
        _bankSettings = o.Bank;
        if (Config.Memory is { } m)
        {
            int maxPer = o.Bank.MaxMemoriesPerChunk > 0 ? o.Bank.MaxMemoriesPerChunk : m.MemoriesPerChunk;
            info = info with { Memory = new EngineMemoryInfo(Tokenizer.Encode(m.ReferencePrefix, addSpecialTokens: false), m.MemoryTokensPerHead, m.ReferenceMaxTokens, m.MemoriesPerChunk, m.RetrievalInterval, maxPer) };
            if (!string.IsNullOrWhiteSpace(o.Bank.Path) && o.Bank.Path is { } bankPath)
            {
                BankDirectory = RepositoryLayout.ResolvePath(bankPath, env.ContentRootPath);
                memoryFactory = memorySourceFactory ?? OpenBank;
            }
        }
        _redis = !string.IsNullOrWhiteSpace(o.Bank.Redis) ? o.Bank.Redis : string.IsNullOrWhiteSpace(o.Redis.ConnectionString) ? null : o.Redis.ConnectionString;
        Engine = new InferenceEngine(o.Engine, info, Tokenizer, factory, memoryFactory);
    }

    private readonly BankSettings _bankSettings;
    private readonly ILoggerFactory? _loggerFactory;
    private readonly string? _redis;
    private IEmbedder? _embedder;
    private readonly Lock _embedderLock = new();

    /// <summary>Opens the bank on the engine thread once the model is loaded (the bank encodes with the model's tensors).</summary>
    private IMemorySource? OpenBank(IModelRunner runner)
    {
        if (runner is not CausalLMRunner real) return null;
        var bank = MemoryBank.Open(BankDirectory!, real.Model, Tokenizer, new MemoryBankOptions
        {
            Redis = _redis,
            ProcessCacheBytes = _bankSettings.ProcessCacheBytes,
            EncodeBatch = Math.Max(1, _bankSettings.IngestBatchReferences),
            Embedder = _bankSettings.Embedder == "hashing" ? new HashingEmbedder() : null,
            ReadOnly = _bankSettings.ReadOnly,
            WriterId = string.IsNullOrEmpty(_bankSettings.WriterId) ? null : _bankSettings.WriterId,
            RefreshInterval = TimeSpan.FromSeconds(_bankSettings.RefreshSeconds),
            Logger = _loggerFactory?.CreateLogger("Memory3.Engine.Memory.MemoryBank"),
        });
        Bank = bank;
        return bank;
    }

    /// <summary>The bank directory when one is configured (and the model reads memory).</summary>
    public string? BankDirectory { get; }
    /// <summary>The open bank, once the engine has loaded the model; null without one.</summary>
    public MemoryBank? Bank { get; private set; }
    public BankSettings BankSettings => _bankSettings;

    /// <summary>The embedder /v1/embeddings serves: the bank retriever's, else one of its own (all-MiniLM-L6-v2, or hashing).</summary>
    public IEmbedder Embedder
    {
        get
        {
            if (Bank is { } b) return b.Retriever.Embedder;
            lock (_embedderLock)
                return _embedder ??= _bankSettings.Embedder == "hashing" ? new HashingEmbedder() : new MiniLmEmbedder();
        }
    }

    public string Id { get; }
    public string Directory { get; }
    public ModelConfig Config { get; }
    public ITokenizer Tokenizer { get; }
    /// <summary>Null when the tokenizer has no chat template (chat answers 400).</summary>
    public IChatFormatter? ChatFormatter { get; }
    public int MaxModelLen { get; }
    public InferenceEngine Engine { get; }
    public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;

    /// <summary>The text of one token, as logprobs show it.</summary>
    public string TokenText(int id) => id < 0 ? "" : Tokenizer.Decode([id], skipSpecialTokens: false);

    public void Dispose()
    {
        Engine.Dispose();
        _embedder?.Dispose();
    }
}
