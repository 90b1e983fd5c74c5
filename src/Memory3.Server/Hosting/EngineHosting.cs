using Memory3.Engine.Inference;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Memory3.Server.Hosting;

public static partial class EngineHosting
{
    /// <summary>Binds and validates <c>Memory3</c> options, loads the model host and runs the engine thread as a hosted service.</summary>
    public static IHostApplicationBuilder AddEngine(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<Memory3Options>().Bind(builder.Configuration.GetSection(Memory3Options.Section)).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<Memory3Options>, Memory3OptionsValidator>();
        builder.Services.AddSingleton(sp => new ModelHost(
            sp.GetRequiredService<IOptions<Memory3Options>>(), sp.GetRequiredService<IHostEnvironment>(), sp.GetService<IModelRunnerFactory>(),
            loggerFactory: sp.GetService<ILoggerFactory>()));
        builder.Services.AddSingleton<IInferenceEngine>(sp => sp.GetRequiredService<ModelHost>().Engine);
        builder.Services.AddSingleton<ApiKeyStore>();
        builder.Services.AddHostedService<EngineHostedService>();
        builder.Services.Configure<KestrelServerOptions>(k =>
        {
            var limits = builder.Configuration.GetSection($"{Memory3Options.Section}:Limits").Get<LimitSettings>() ?? new LimitSettings();
            k.Limits.MaxRequestBodySize = limits.MaxRequestBodyBytes;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(15);
        });
        return builder;
    }

    private sealed partial class EngineHostedService(ModelHost host, ApiKeyStore keys, IHostApplicationLifetime lifetime, ILogger<EngineHostedService> log) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (keys.IsOpen) LogNoKeys(log);
            else LogKeys(log, keys.Count);
            LogLoading(log, host.Id, host.Directory, host.MaxModelLen);
            host.Engine.StepFailed += e => LogStepFailed(log, e);
            host.Engine.Start();
            host.Engine.Ready.ContinueWith(t =>
            {
                if (t.IsFaulted)
                {
                    LogLoadFailed(log, host.Directory, t.Exception!.GetBaseException().Message);
                    lifetime.StopApplication();
                }
                else LogReady(log, host.Id);
            }, TaskScheduler.Default);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            host.Engine.Dispose();
            return Task.CompletedTask;
        }

        [LoggerMessage(Level = LogLevel.Warning, Message = "No API keys configured (Memory3:ApiKeys): the server serves everyone")]
        static partial void LogNoKeys(ILogger log);
        [LoggerMessage(Level = LogLevel.Information, Message = "{Count} API keys configured")]
        static partial void LogKeys(ILogger log, int count);
        [LoggerMessage(Level = LogLevel.Information, Message = "Loading model {ModelId} from {Directory} (context {MaxModelLen} tokens)")]
        static partial void LogLoading(ILogger log, string modelId, string directory, int maxModelLen);
        [LoggerMessage(Level = LogLevel.Information, Message = "Model {ModelId} loaded; ready")]
        static partial void LogReady(ILogger log, string modelId);
        [LoggerMessage(Level = LogLevel.Critical, Message = "Memory3:Model:Path: the model at {Directory} failed to load: {Error}")]
        static partial void LogLoadFailed(ILogger log, string directory, string error);
        [LoggerMessage(Level = LogLevel.Error, Message = "An engine step failed; its sequences were failed and the loop goes on")]
        static partial void LogStepFailed(ILogger log, Exception e);
    }
}
