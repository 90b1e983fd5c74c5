namespace Memory3.Engine.Tokenization;

/// <summary>
/// A loaded tokenizer: text to ids and back, plus the special tokens the engine needs.
/// Implementations are immutable and safe to share across threads.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of ids, added and special tokens included (max id + 1).</summary>
    int VocabSize { get; }

    int? BosTokenId { get; }

    /// <summary>tokenizer_config.json <c>eos_token</c>, then generation_config.json <c>eos_token_id</c> (int or list), distinct.</summary>
    IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Raw <c>chat_template</c> string from tokenizer_config.json, or null.</summary>
    string? ChatTemplate { get; }

    /// <summary>Whether <see cref="Encode"/> with <c>addSpecialTokens</c> prepends BOS.</summary>
    bool AddBosToken { get; }

    /// <summary>Encodes text. Added/special token strings in <paramref name="text"/> become their ids.</summary>
    int[] Encode(string text, bool addSpecialTokens = true);

    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false);

    /// <summary>The raw UTF-8 bytes a token stands for (may be part of a character).</summary>
    byte[] TokenBytes(int id);

    bool IsSpecial(int id);

    string? IdToToken(int id);

    int? TokenToId(string token);
}
