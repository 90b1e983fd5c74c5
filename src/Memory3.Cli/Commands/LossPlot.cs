using System.Globalization;
using ScottPlot;
using SkiaSharp;

namespace Memory3.Cli.Commands;

/// <summary>
/// The loss curves of <c>memory3 train</c> as a PNG: one line per stage on a shared x axis of cumulative steps (each
/// stage starts where the one before it ended), the loss of each step thin and its 20-step moving average thick.
/// Text is drawn with a font embedded in this assembly (DejaVu Sans, cut down to ASCII), so the plot looks the same
/// everywhere and needs no system fonts.
/// </summary>
public static class LossPlot
{
    public const string Title = "memory3-tiny training loss";
    public const int Width = 1000, Height = 500, Smoothing = 20;

    /// <summary>The order stages run in; a stage not named here comes after them, in the order the log first names it.</summary>
    private static readonly string[] StageOrder = ["copy", "warmup", "memory", "chat"];

    /// <summary>One logged step: <c>stage,step,loss,lr,gradnorm,tokens,elapsedSeconds</c>.</summary>
    public sealed record Row(string Stage, int Step, double Loss);

    /// <summary>
    /// Reads the loss log. A resumed run logs again the steps after its last checkpoint: the last row of each
    /// (stage, step) wins. Lines that do not parse (a line cut short by a kill, a header) are skipped.
    /// Returns the stages in run order, each with its rows in step order.
    /// </summary>
    public static List<(string Stage, List<Row> Rows)> Read(string csvPath)
    {
        var last = new Dictionary<(string, int), Row>();
        var firstSeen = new List<string>();
        foreach (var line in File.ReadLines(csvPath))
        {
            var f = line.Split(',');
            if (f.Length < 3) continue;
            var stage = f[0].Trim();
            if (stage.Length == 0
                || !int.TryParse(f[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int step)
                || !double.TryParse(f[2], NumberStyles.Float, CultureInfo.InvariantCulture, out double loss))
                continue;
            last[(stage, step)] = new Row(stage, step, loss);
            if (!firstSeen.Contains(stage)) firstSeen.Add(stage);
        }
        var order = StageOrder.Where(firstSeen.Contains).Concat(firstSeen.Where(s => !StageOrder.Contains(s)));
        return order.Select(s => (s, last.Values.Where(r => r.Stage == s).OrderBy(r => r.Step).ToList())).ToList();
    }

    /// <summary>Trailing moving average over up to <paramref name="window"/> points (fewer at the start).</summary>
    public static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        var result = new double[values.Count];
        double sum = 0;
        for (int i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }

    public static void Write(string csvPath, string pngPath)
    {
        var stages = Read(csvPath);
        var plot = new Plot();
        EmbeddedFont.Use(plot);
        plot.Title(Title);
        plot.XLabel("step (stages run one after another)");
        plot.YLabel("loss (thin: each step, thick: mean of 20)");

        var palette = new ScottPlot.Palettes.Category10();
        int offset = 0;
        for (int s = 0; s < stages.Count; s++)
        {
            var (stage, rows) = stages[s];
            var finite = rows.Where(r => double.IsFinite(r.Loss)).ToList();
            var color = palette.GetColor(s);
            if (s > 0)
            {
                var boundary = plot.Add.VerticalLine(offset);
                boundary.Color = Colors.Gray.WithAlpha(0.6);
                boundary.LinePattern = LinePattern.Dashed;
                boundary.LineWidth = 1;
            }
            if (finite.Count > 0)
            {
                double[] xs = finite.Select(r => (double)(offset + r.Step)).ToArray();
                double[] ys = finite.Select(r => r.Loss).ToArray();
                var raw = plot.Add.ScatterLine(xs, ys);
                raw.Color = color.WithAlpha(0.35);
                raw.LineWidth = 1;
                var smooth = plot.Add.ScatterLine(xs, MovingAverage(ys, Smoothing));
                smooth.Color = color;
                smooth.LineWidth = 2.5f;
                smooth.LegendText = stage;
            }
            offset += rows.Count == 0 ? 0 : rows[^1].Step;
        }
        if (stages.Count > 0) plot.ShowLegend(Alignment.UpperRight);
        plot.Axes.Margins(horizontal: 0.01, vertical: 0.05);

        var dir = Path.GetDirectoryName(Path.GetFullPath(pngPath));
        if (dir is not null) Directory.CreateDirectory(dir);
        plot.SavePng(pngPath, Width, Height);
    }

    /// <summary>Resolves one font name to the typeface embedded in this assembly, whatever the machine has installed.</summary>
    private sealed class EmbeddedFont : IFontResolver
    {
        public const string Name = "Memory3 DejaVu Sans";
        private static readonly Lazy<byte[]> Bytes = new(() =>
        {
            using var s = typeof(LossPlot).Assembly.GetManifestResourceStream("Memory3.Cli.DejaVuSans.ttf")
                ?? throw new InvalidOperationException("the embedded plot font is missing");
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        });
        private static readonly object Gate = new();
        private static bool _registered;

        public static void Use(Plot plot)
        {
            lock (Gate)
            {
                if (!_registered)
                {
                    Fonts.FontResolvers.Insert(0, new EmbeddedFont());
                    _registered = true;
                }
            }
            plot.Font.Set(Name);
            plot.Legend.FontName = Name;
            plot.Legend.SetBestFontOnEachRender = false;
        }

        private static SKTypeface? Create(string fontName) =>
            fontName == Name ? SKTypeface.FromData(SKData.CreateCopy(Bytes.Value)) : null;

        public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) => Create(fontName);

        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) => Create(fontName);
    }
}
