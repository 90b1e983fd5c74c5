using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Tokenization;

/// <summary>Expected values from Python's unicodedata.normalize("NFC", ...).</summary>
public class NfcTokenizationTests
{
    [Theory]
    [InlineData("e\u0301", "\u00e9")]
    [InlineData("A\u030a\u0301", "\u01fa")]
    [InlineData("\u1100\u1161\u11a8", "\uac01")]
    [InlineData("a\u0323\u0302", "\u1ead")]
    [InlineData("a\u0302\u0323", "\u1ead")]
    [InlineData("\u212b", "\u00c5")]
    [InlineData("\u0344", "\u0308\u0301")]
    [InlineData("q\u0307\u0323", "q\u0323\u0307")]
    [InlineData("\u0915\u093c", "\u0915\u093c")]
    [InlineData("\ud55c\uad6d\uc5b4", "\ud55c\uad6d\uc5b4")]
    [InlineData("e\u0301\u0301", "\u00e9\u0301")]
    [InlineData("\u1e0b\u0323", "\u1e0d\u0307")]
    [InlineData("\u00f1and\u00fa", "\u00f1and\u00fa")]
    [InlineData("\U0001d15e", "\U0001d157\U0001d165")]
    [InlineData("plain ascii", "plain ascii")]
    public void Nfc_matches_python(string input, string expected) => Assert.Equal(expected, Nfc.Normalize(input));
}
