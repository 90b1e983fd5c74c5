using System.ComponentModel;
using System.Diagnostics;
using Memory3.Engine.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Memory3.Cli.Commands;

/// <summary><c>memory3 train</c>: the recipe of docs/training.md, resumable, with a progress bar per stage and the loss plot.</summary>
public sealed class TrainCommand : Command<TrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--out <DIR>"), Description("Where the trained model is written (default models/memory3-tiny)")]
        public string Out { get; init; } = "models/memory3-tiny";

        [CommandOption("--work <DIR>"), Description("Tokenizer, checkpoints and loss log; rerunning resumes from here (default .train)")]
        public string Work { get; init; } = ".train";

        [CommandOption("--seed <SEED>")]
        public int Seed { get; init; } = 1;

        [CommandOption("--warmup-steps <N>"), Description("Stage 1b steps: the warm-up after the drills (default 500)")]
        public int? WarmUpSteps { get; init; }

        [CommandOption("--copy-steps <N>"), Description("Stage 1a steps: copying drills (default 1200)")]
        public int? CopySteps { get; init; }

        [CommandOption("--memory-steps <N>"), Description("Stage 2 steps (default 3400)")]
        public int? MemorySteps { get; init; }

        [CommandOption("--chat-steps <N>"), Description("Stage 3 steps (default 300)")]
        public int? ChatSteps { get; init; }

        [CommandOption("--world-only"), Description("Only write the held-out world's knowledge base and questions into --out")]
        public bool WorldOnly { get; init; }

        [CommandOption("--plot <FILE>"), Description("Loss curves as PNG (default docs/training-loss.png)")]
        public string Plot { get; init; } = "docs/training-loss.png";
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var o = new TrainRecipeOptions { Seed = s.Seed };
        if (s.WarmUpSteps is int w) o = o with { WarmUp = o.WarmUp with { Steps = w } };
        if (s.CopySteps is int cs) o = o with { Copy = o.Copy with { Steps = cs } };
        if (s.MemorySteps is int m) o = o with { WithMemory = o.WithMemory with { Steps = m } };
        if (s.ChatSteps is int c) o = o with { Chat = o.Chat with { Steps = c } };
        if (s.WorldOnly)
        {
            TrainRecipe.WriteHeldOut(o, TrainRecipe.Worlds(o).HeldOut, s.Out);
            AnsiConsole.MarkupLineInterpolated($"Wrote the held-out world's knowledge base and questions into {s.Out}");
            return 0;
        }
        var sw = Stopwatch.StartNew();
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                foreach (var st in new[] { o.Copy, o.WarmUp, o.WithMemory, o.Chat }) tasks[st.Name] = ctx.AddTask(st.Name, autoStart: false, maxValue: st.Steps);
                TrainRecipe.Run(o, s.Work, s.Out, msg => AnsiConsole.MarkupLineInterpolated($"[grey]{msg}[/]"), r =>
                {
                    var t = tasks[r.Stage];
                    if (!t.IsStarted) t.StartTask();
                    t.Value = r.Step;
                    t.Description = $"{r.Stage} loss {r.Loss:F3} lr {r.Lr:E1} {r.TokensPerSecond:F0} tok/s";
                });
                foreach (var t in tasks.Values) t.Value = t.MaxValue;
            });
        LossPlot.Write(Path.Combine(s.Work, "loss.csv"), s.Plot);
        AnsiConsole.MarkupLineInterpolated($"Trained [bold]{s.Out}[/] in {sw.Elapsed.TotalMinutes:F1} min; loss curves in {s.Plot}");
        return 0;
    }
}
