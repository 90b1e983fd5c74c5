using System.Text;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Encode;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Memory;

public class IngestInputTests
{
    private static readonly Lazy<(ITokenizer Tok, TempDir Dir)> Tokenizer = new(() =>
    {
        var dir = new TempDir();
        RandomTokenizer.Write(dir.Path, 512);
        return (TokenizerLoader.Load(dir.Path), dir);
    });

    [Fact]
    public void BadFilesGetTheirOwnErrorAndTheRestAreRead()
    {
        using var tmp = new TempDir();
        File.WriteAllText(Path.Combine(tmp.Path, "good.md"), "# Title\nA sentence. Another one.");
        File.WriteAllText(Path.Combine(tmp.Path, "empty.txt"), "");
        File.WriteAllBytes(Path.Combine(tmp.Path, "binary.txt"), [0x50, 0x4B, 0x03, 0x04, 0x00, 0x01]);
        File.WriteAllBytes(Path.Combine(tmp.Path, "latin1.txt"), [(byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'\n']);
        File.WriteAllText(Path.Combine(tmp.Path, "longline.txt"), new string('x', 10 * 1024 * 1024));
        File.WriteAllText(Path.Combine(tmp.Path, "ignored.bin"), "not a text extension");
        var docs = new DocumentReader().Read([tmp.Path, Path.Combine(tmp.Path, "missing.txt")]).ToDictionary(d => Path.GetFileName(d.Source));
        Assert.Equal(6, docs.Count);
        Assert.True(docs["good.md"].Ok);
        Assert.Contains("Another one.", docs["good.md"].Text);
        Assert.Equal("empty file", docs["empty.txt"].Error);
        Assert.StartsWith("binary file", docs["binary.txt"].Error);
        Assert.StartsWith("not valid UTF-8", docs["latin1.txt"].Error);
        Assert.StartsWith("line 1 is 10,485,760 bytes long", docs["longline.txt"].Error);
        Assert.Equal("no such file or directory", docs["missing.txt"].Error);
    }

    [Fact]
    public void ChunksFitTheTokenLimitAndBreakAtSentences()
    {
        var tok = Tokenizer.Value.Tok;
        var sentences = Enumerable.Range(0, 40).Select(i => $"Sentence number {i} talks about the memory bank and its shards.").ToArray();
        var chunks = new ReferenceChunker(tok, 40).Split(string.Join(" ", sentences));
        Assert.True(chunks.Count > 5);
        Assert.All(chunks, c => Assert.InRange(tok.Encode(c, addSpecialTokens: false).Length, 1, 40));
        Assert.All(chunks, c => Assert.EndsWith("shards.", c));                 // whole sentences only
        Assert.Equal(string.Join(" ", sentences), string.Join(" ", chunks));   // nothing lost
    }

    [Fact]
    public void OverlongSentencesAndWordsAreCutWithoutLosingText()
    {
        var tok = Tokenizer.Value.Tok;
        var text = string.Join(" ", Enumerable.Repeat("word", 300)) + " " + new string('z', 900) + " 日本語の文字列も切れずに残る";
        var chunks = new ReferenceChunker(tok, 32).Split(text);
        Assert.All(chunks, c => Assert.InRange(tok.Encode(c, addSpecialTokens: false).Length, 1, 32));
        Assert.All(chunks, c => Assert.DoesNotContain('\uFFFD', c));
        Assert.Equal(text.Replace(" ", ""), string.Concat(chunks).Replace(" ", ""));
    }

    [Fact]
    public void MemoryIdsDependOnNormalisedTextAndTheBank()
    {
        var a = BankIdentity.MemoryId("The  bank\n holds  memories. ", "f1");
        Assert.Equal(a, BankIdentity.MemoryId("The bank holds memories.", "f1"));
        Assert.NotEqual(a, BankIdentity.MemoryId("The bank holds memories.", "f2"));
        Assert.NotEqual(a, BankIdentity.MemoryId("The bank holds memory.", "f1"));
        Assert.Equal(32, a.Length);
        // NFC: a precomposed é and e + combining acute are the same reference.
        Assert.Equal(BankIdentity.MemoryId("caf\u00e9", "f"), BankIdentity.MemoryId("cafe\u0301", "f"));
    }
}
