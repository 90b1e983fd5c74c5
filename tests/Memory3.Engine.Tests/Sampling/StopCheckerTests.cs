using System.Text;
using Memory3.Engine.Model.Sampling;

namespace Memory3.Engine.Tests.Sampling;

public class StopCheckerTests
{
    /// <summary>Pushes chunks; returns everything emitted (plus Flush when no stop) and whether it stopped.</summary>
    private static (string Text, bool Stopped) Feed(StopChecker c, params string[] chunks)
    {
        var sb = new StringBuilder();
        foreach (var chunk in chunks)
        {
            var o = c.Push(chunk);
            sb.Append(o.Text);
            if (o.Stopped) return (sb.ToString(), true);
        }
        sb.Append(c.Flush());
        return (sb.ToString(), false);
    }

    [Fact]
    public void StopSplitAcrossPushes()
    {
        var c = new StopChecker(["lo W"]);
        var o1 = c.Push("Hel");
        Assert.False(o1.Stopped);
        Assert.Equal("He", o1.Text);   // "l" may start "lo W"
        var o2 = c.Push("lo W");
        Assert.True(o2.Stopped);
        Assert.Equal("l", o2.Text);
        Assert.Equal("lo W", c.MatchedStop);
        var o3 = c.Push("orld");
        Assert.True(o3.Stopped);
        Assert.Equal("", o3.Text);
        Assert.Equal("", c.Flush());
        Assert.Equal(("Hel", true), Feed(new StopChecker(["lo W"]), "Hel", "lo W", "orld"));
    }

    [Fact]
    public void NoFalseHoldback()
    {
        var c = new StopChecker(["xyz"]);
        Assert.Equal(new StopOutput("abc", false), c.Push("abc"));   // nothing could start "xyz"
        Assert.Equal(new StopOutput("a", false), c.Push("ax"));
        Assert.Equal(new StopOutput("xq", false), c.Push("q"));      // "xq" cannot become "xyz": released
        Assert.Equal(new StopOutput("", false), c.Push("xy"));
        Assert.Equal(new StopOutput("xyxa", false), c.Push("xa"));   // held "xy" released once it cannot complete
        Assert.Equal("", c.Flush());
    }

    [Fact]
    public void TextBeforeStopIsExact()
    {
        Assert.Equal(("Hello world. ", true), Feed(new StopChecker(["STOP"]), "Hello world. STOP here"));
        Assert.Equal(("a b", true), Feed(new StopChecker(["\n\n"]), "a", " b\n", "\nc"));
    }

    [Fact]
    public void MultipleStops_FirstCompletedWins()
    {
        // "ba" completes before "abab" would, although "abab" starts earlier.
        Assert.Equal(("a", true), Feed(new StopChecker(["abab", "ba"]), "abab"));
        Assert.Equal(("a", true), Feed(new StopChecker(["abab", "ba"]), "ab", "ab"));
        Assert.Equal(("x", true), Feed(new StopChecker(["b", "ab"]), "xab"));   // same end: the longer
        Assert.Equal(("a", true), Feed(new StopChecker(["END", "\n\n"]), "a\n\nbEND"));
        Assert.Equal(("ab", true), Feed(new StopChecker(["END", "\n\n"]), "ab", "EN", "D\n\n"));
        Assert.Equal(("x", true), Feed(new StopChecker(["abc", "ab"]), "xa", "bc"));
        var c = new StopChecker(["abc", "bcd"]);
        Assert.Equal(new StopOutput("z", false), c.Push("zab"));
        Assert.Equal(new StopOutput("", true), c.Push("cd"));   // "zabcd": "abc" ends first -> "z"
        Assert.Equal("abc", c.MatchedStop);
    }

    [Fact]
    public void StopInFirstChunk()
    {
        Assert.Equal(("", true), Feed(new StopChecker(["STOP"]), "STOPxyz", "more"));
        Assert.Equal(("", true), Feed(new StopChecker(["STOP"]), "ST", "OP"));
    }

    [Fact]
    public void FlushReleasesHeldText()
    {
        var c = new StopChecker(["abc"]);
        Assert.Equal(new StopOutput("xx", false), c.Push("xxab"));
        Assert.Equal("ab", c.Flush());
        Assert.Equal("", c.Flush());
    }

    [Fact]
    public void NoStops_PassesThrough()
    {
        var c = new StopChecker([]);
        Assert.Equal(new StopOutput("abc", false), c.Push("abc"));
        Assert.Equal("", c.Flush());
    }

    [Fact]
    public void RandomChunking_MatchesReference()
    {
        var r = new Random(99);
        string[] stops = ["aab", "ba", "abab"];
        for (int trial = 0; trial < 2000; trial++)
        {
            int len = r.Next(0, 30);
            var chars = new char[len];
            for (int i = 0; i < len; i++) chars[i] = "abc"[r.Next(3)];
            var text = new string(chars);
            // Reference: feed one character at a time; stop when a stop string ends (the longest if several).
            (string, bool) expected = (text, false);
            for (int end = 1; end <= len; end++)
            {
                var done = stops.Where(s => text[..end].EndsWith(s, StringComparison.Ordinal)).OrderByDescending(s => s.Length).FirstOrDefault();
                if (done is not null) { expected = (text[..(end - done.Length)], true); break; }
            }

            var chunks = new List<string>();
            for (int i = 0; i < len;)
            {
                int n = Math.Min(len - i, r.Next(1, 5));
                chunks.Add(text.Substring(i, n));
                i += n;
            }
            var c = new StopChecker(stops);
            var sb = new StringBuilder();
            bool stopped = false;
            foreach (var chunk in chunks)
            {
                var o = c.Push(chunk);
                sb.Append(o.Text);
                // Nothing emitted may be part of a stop: emitted text is always a prefix of the expected output.
                Assert.StartsWith(sb.ToString(), expected.Item1);
                if (o.Stopped) { stopped = true; break; }
            }
            if (!stopped) sb.Append(c.Flush());
            Assert.Equal(expected, (sb.ToString(), stopped));
        }
    }
}
