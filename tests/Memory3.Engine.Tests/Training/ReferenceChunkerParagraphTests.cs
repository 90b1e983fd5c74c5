using Memory3.Engine.Memory.Encode;

namespace Memory3.Engine.Tests.Training;

/// <summary>The chunker splits paragraphs first: the shipped knowledge file is one reference per paragraph.</summary>
public class ReferenceChunkerParagraphTests
{
    [Fact]
    public void ABlankLineAlwaysEndsAReference()
    {
        var chunker = new ReferenceChunker(TrainingWorlds.Tokenizer, 128);
        // Short paragraphs that would fit in one reference together are still two.
        Assert.Equal(["One fact.", "Another fact."], chunker.Split("One fact.\n\nAnother fact."));
        // Blank lines with spaces, CRLF, several blank lines, and blank lines at either end.
        Assert.Equal(["A b.", "C d.", "E f.", "G h."], chunker.Split("\n\nA b.\n   \nC d.\r\n\r\nE f.\n\n\n\n\t\nG h.\n\n"));
        // A single newline is not a paragraph break: the sentences are packed together.
        Assert.Equal(["First line. Second line."], chunker.Split("First line.\nSecond line."));
        // A paragraph longer than the limit is split inside itself, and never merged with the next one.
        var longParagraph = string.Join(" ", Enumerable.Range(0, 60).Select(i => $"Sentence {i} is here."));
        var chunks = chunker.Split(longParagraph + "\n\nTail.");
        Assert.True(chunks.Count >= 3);
        Assert.Equal("Tail.", chunks[^1]);
        Assert.EndsWith("Sentence 59 is here.", chunks[^2]);
        Assert.All(chunks, c => Assert.InRange(TrainingWorlds.Tokenizer.Encode(c, addSpecialTokens: false).Length, 1, 128));
    }

    [Fact]
    public void TheShippedHeldOutFileChunksIntoExactlyItsReferences()
    {
        var chunker = new ReferenceChunker(TrainingWorlds.Tokenizer, 128);
        Assert.Equal(TrainingWorlds.HeldOutReferences, chunker.Split(TrainingWorlds.HeldOutFileText));
    }
}
