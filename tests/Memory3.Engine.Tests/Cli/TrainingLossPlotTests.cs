using System.Globalization;
using Memory3.Cli.Commands;
using SkiaSharp;

namespace Memory3.Engine.Tests.Cli;

/// <summary>The loss plot of <c>memory3 train</c> (<see cref="LossPlot"/>).</summary>
public class TrainingLossPlotTests
{
    /// <summary>A log like the trainer's, with a resume that logged steps 41..50 of the memory stage twice (the second time lower) and a line cut short by a kill.</summary>
    private static string SyntheticLog()
    {
        var lines = new List<string>();
        void Stage(string name, int steps, double start, int from = 1, double shift = 0)
        {
            for (int s = from; s <= steps; s++)
            {
                double loss = start * Math.Exp(-s / 60.0) + 0.5 + 0.1 * Math.Sin(s) + shift;
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"{name},{s},{loss:F5},{1e-3:E3},{0.9:F4},{2048},{s * 0.5:F1}"));
            }
        }
        Stage("warmup", 120, 6);
        Stage("memory", 50, 3);
        lines.Add("memory,51,2.9");            // cut short: still a loss, kept
        lines.Add("memory,52,");                // cut shorter: skipped
        Stage("memory", 200, 3, from: 41, shift: -0.25);
        Stage("chat", 80, 2);
        return string.Join("\n", lines) + "\n";
    }

    [Fact]
    public void ReadKeepsTheLastRowOfEachStepAndTheStagesInRunOrder()
    {
        using var tmp = new TempDir();
        var csv = Path.Combine(tmp.Path, "loss.csv");
        File.WriteAllText(csv, "chat,1,1.5\n" + SyntheticLog());
        var stages = LossPlot.Read(csv);
        Assert.Equal(["warmup", "memory", "chat"], stages.Select(s => s.Stage));
        Assert.Equal(Enumerable.Range(1, 120), stages[0].Rows.Select(r => r.Step));
        Assert.Equal(Enumerable.Range(1, 200), stages[1].Rows.Select(r => r.Step));
        Assert.Equal(Enumerable.Range(1, 80), stages[2].Rows.Select(r => r.Step));
        double resumed = 3 * Math.Exp(-45 / 60.0) + 0.5 + 0.1 * Math.Sin(45) - 0.25;
        Assert.Equal(resumed, stages[1].Rows[44].Loss, 4);
        Assert.Equal([1.0, 1.5, 2.5, 3.5], LossPlot.MovingAverage([1, 2, 3, 4], 2));
    }

    [Fact]
    public void WritesA1000By500PngWithText()
    {
        using var tmp = new TempDir();
        var csv = Path.Combine(tmp.Path, "loss.csv");
        File.WriteAllText(csv, SyntheticLog());
        var png = Path.Combine(tmp.Path, "docs", "training-loss.png");   // the folder is made
        LossPlot.Write(csv, png);

        var bytes = File.ReadAllBytes(png);
        Assert.True(bytes.Length > 1000);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.Equal(LossPlot.Width, bitmap.Width);
        Assert.Equal(LossPlot.Height, bitmap.Height);
        // The title is drawn (the embedded font needs no system fonts): dark pixels above the plot's frame, the
        // first row that is dark all across the middle. Without any font, the frame is there and the title is not.
        int Dark(int x, int y) { var c = bitmap.GetPixel(x, y); return c.Red + c.Green + c.Blue < 300 ? 1 : 0; }
        int frame = Enumerable.Range(0, bitmap.Height / 2).First(y => Enumerable.Range(300, 400).Sum(x => Dark(x, y)) > 390);
        int dark = Enumerable.Range(0, frame).Sum(y => Enumerable.Range(300, 400).Sum(x => Dark(x, y)));
        Assert.True(dark > 100, $"{dark} dark pixels above the frame (row {frame}), where the title should be");
    }

    [Fact]
    public void AnEmptyLogStillWritesAPlot()
    {
        using var tmp = new TempDir();
        var csv = Path.Combine(tmp.Path, "loss.csv");
        File.WriteAllText(csv, "");
        var png = Path.Combine(tmp.Path, "empty.png");
        LossPlot.Write(csv, png);
        Assert.True(new FileInfo(png).Length > 0);
    }
}
