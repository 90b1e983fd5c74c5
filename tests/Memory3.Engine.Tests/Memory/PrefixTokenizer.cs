using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Memory;

/// <summary>A tokenizer stub for the memory encoder: the prefix is given as ids directly (the seam is the encoder's prefix).</summary>
internal sealed class PrefixTokenizer(int[] prefix) : ITokenizer
{
    public int VocabSize => 1000;
    public int? BosTokenId => prefix[0];
    public IReadOnlyList<int> EosTokenIds => [];
    public string? ChatTemplate => null;
    public bool AddBosToken => false;
    public int[] Encode(string text, bool addSpecialTokens = true) => prefix;
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false) => "";
    public byte[] TokenBytes(int id) => [];
    public bool IsSpecial(int id) => false;
    public string? IdToToken(int id) => null;
    public int? TokenToId(string token) => null;
}
