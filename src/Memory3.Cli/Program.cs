using Memory3.Cli;
using Memory3.Cli.Commands;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("memory3");
    config.SetExceptionHandler((ex, _) => UserErrors.Report(ex));
    config.AddCommand<InitRandomCommand>("init-random").WithDescription("Write a random-weight model (tiny ~1M, small ~30M, base ~0.55B parameters) in the Hugging Face format, tokenizer included.");
    config.AddCommand<TrainCommand>("train").WithDescription("Train the small Memory3 model: synthetic world, tokenizer, warm-up, memory stage, chat; resumable.");
    config.AddCommand<GenerateCommand>("generate").WithDescription("Generate text from a prompt, streamed to stdout.");
    config.AddCommand<IngestCommand>("ingest").WithDescription("Chunk, encode and store text or markdown files as explicit memories, with a progress bar.");
    config.AddCommand<SearchCommand>("search").WithDescription("Print the top references for a query, with scores.");
    config.AddBranch("bank", bank => bank.AddCommand<BankStatsCommand>("stats").WithDescription("References, bytes on disk, bytes per memory and quantization error."));
    config.AddBranch("quantizer", q => q.AddCommand<QuantizerTrainCommand>("train").WithDescription("Train the bank's vector quantizer on sampled memories and convert the bank."));
    config.AddBranch("eval", e => e.AddCommand<EvalFactsCommand>("facts").WithDescription("Held-out fact questions: exact match with memory (bf16, quantized), without, with RAG, without sparsification; TTFT memory vs RAG."));
    config.AddBranch("bench", bench =>
    {
        bench.SetDescription("Measure speed beside the reference it is judged against (memory bandwidth, GEMM peak).");
        bench.AddCommand<BenchDecodeCommand>("decode").WithDescription("Decode tokens/s at a batch size, beside the memory-bandwidth floor.");
        bench.AddCommand<BenchPrefillCommand>("prefill").WithDescription("Prefill tokens/s on a prompt, beside the bf16 GEMM peak.");
        bench.AddCommand<BenchLoadCommand>("load").WithDescription("Peak resident memory while loading a model, beside its weight bytes.");
        bench.AddCommand<BenchMemoryCommand>("memory").WithDescription("Decode tokens/s with memory ÷ without (the paper's 128 in, 128 out protocol), in-process tier off and on.");
        bench.AddCommand<BenchTiersCommand>("tiers").WithDescription("p50/p99 latency of fetching one chunk's 5 memories from each tier.");
        bench.AddCommand<BenchQuantizerCommand>("quantizer").WithDescription("Quantizer at the paper's memory shape: bytes per vector, error, encode/decode time.");
        bench.AddCommand<BenchRetrievalCommand>("retrieval").WithDescription("Index add rate and search latency (dense, lexical, fused).");
        bench.AddCommand<BenchServeCommand>("serve").WithDescription("A running server under load: output tokens/s, TTFT and ITL p50/p99 at each concurrency, and tokens/s ÷ level 1's.");
        bench.AddCommand<BenchKernelsCommand>("kernels").WithDescription("The bf16 linear-layer kernel against libtorch, beside the bandwidth floor.");
    });
});
return app.Run(args);
