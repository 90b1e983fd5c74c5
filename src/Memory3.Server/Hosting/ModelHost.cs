using Memory3.Engine.Inference;
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
    public ModelHost(IOptions<Memory3Options> options, IHostEnvironment env, IModelRunnerFactory? runnerFactory = null)
    {
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
        Engine = new InferenceEngine(o.Engine, new EngineModelInfo(Id, Config.VocabSize, maxLen, Config.EosTokenIds), Tokenizer, factory);
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

    public void Dispose() => Engine.Dispose();
}
