namespace Memory3.Cli.Commands;

/// <summary>The loss curves of <c>memory3 train</c> as a PNG (placeholder until the plotting library is wired).</summary>
internal static class LossPlot
{
    public static void Write(string csv, string png)
    {
    }
}
