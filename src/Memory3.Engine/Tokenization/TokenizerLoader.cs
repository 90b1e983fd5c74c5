using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Memory3.Engine.Model;
using Microsoft.ML.Tokenizers;

namespace Memory3.Engine.Tokenization;

/// <summary>
/// Loads a Hugging Face model directory's tokenizer: <c>tokenizer.json</c> when present, else a SentencePiece
/// <c>tokenizer.model</c>; <c>tokenizer_config.json</c> (optional) for BOS/EOS, <c>add_bos_token</c> and
/// <c>chat_template</c>; <c>generation_config.json</c> (optional) for extra EOS ids. Every user error is a
/// <see cref="ModelLoadException"/> whose message starts with the offending file's path.
/// </summary>
public static class TokenizerLoader
{
    // GPT-2's pattern, which a ByteLevel pre-tokenizer with use_regex = true applies.
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static ITokenizer Load(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        if (!Directory.Exists(modelDir)) throw new ModelLoadException($"{modelDir}: no such model directory");
        var jsonPath = Path.Combine(modelDir, "tokenizer.json");
        var spPath = Path.Combine(modelDir, "tokenizer.model");
        var config = TokenizerConfig.Read(Path.Combine(modelDir, "tokenizer_config.json"), Path.Combine(modelDir, "generation_config.json"));
        if (File.Exists(jsonPath)) return FromTokenizerJson(jsonPath, config);
        if (File.Exists(spPath)) return FromSentencePiece(spPath, config);
        throw new ModelLoadException($"{jsonPath}: missing (a model directory needs tokenizer.json or tokenizer.model)");
    }

    // ---------------------------------------------------------------- tokenizer.json

    static ITokenizer FromTokenizerJson(string path, TokenizerConfig config)
    {
        using var doc = ParseJson(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new ModelLoadException($"{path}: expected a JSON object");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new ModelLoadException($"{path}: no \"model\" object");
        string type = Str(model, "type") ?? (model.TryGetProperty("merges", out _) ? "BPE" : "?");
        if (type != "BPE") throw new ModelLoadException($"{path}: model.type '{type}' is not supported (only BPE)");
        if (!model.TryGetProperty("vocab", out var vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
            throw new ModelLoadException($"{path}: model.vocab missing or not an object");

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                throw new ModelLoadException($"{path}: model.vocab['{p.Name}'] is not a non-negative integer id");
            vocab[p.Name] = id;
        }
        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesEl) && mergesEl.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in mergesEl.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.String)
                {
                    var s = m.GetString()!;
                    int sp = s.IndexOf(' ');
                    if (sp <= 0) throw new ModelLoadException($"{path}: merge '{s}' is not 'left right'");
                    merges.Add((s[..sp], s[(sp + 1)..]));
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                    merges.Add((m[0].GetString()!, m[1].GetString()!));
                else throw new ModelLoadException($"{path}: a merge is neither 'left right' nor [left, right]");
            }
        }

        var added = new List<(int Id, string Content, bool Special)>();
        if (root.TryGetProperty("added_tokens", out var addedEl) && addedEl.ValueKind == JsonValueKind.Array)
            foreach (var a in addedEl.EnumerateArray())
            {
                if (!a.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id) || Str(a, "content") is not { } content)
                    throw new ModelLoadException($"{path}: an added_tokens entry lacks id or content");
                added.Add((id, content, a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True));
            }

        root.TryGetProperty("normalizer", out var normEl);
        root.TryGetProperty("pre_tokenizer", out var preEl);
        root.TryGetProperty("decoder", out var decEl);
        var normalize = BuildNormalizer(normEl, path);

        // Classify the pre-tokenizer: byte-level (GPT-2 / Llama-3 / Qwen) or SentencePiece-like (none / Metaspace).
        string? splitPattern = null;
        bool byteLevel = false, byteLevelPrefixSpace = false;
        string? metaspace = null; string prependScheme = "always"; bool metaspaceSplit = false;
        foreach (var step in Flatten(preEl, "pretokenizers"))
        {
            switch (Str(step, "type"))
            {
                case "Split":
                    if (!step.TryGetProperty("pattern", out var pat) || Str(pat, "Regex") is not { } rx)
                        throw new ModelLoadException($"{path}: pre_tokenizer Split without a Regex pattern is not supported");
                    if (Str(step, "behavior") is { } b && b != "Isolated")
                        throw new ModelLoadException($"{path}: pre_tokenizer Split behavior '{b}' is not supported (only Isolated)");
                    splitPattern = rx;
                    break;
                case "ByteLevel":
                    byteLevel = true;
                    byteLevelPrefixSpace = Bool(step, "add_prefix_space", false);
                    if (Bool(step, "use_regex", true)) splitPattern ??= Gpt2Pattern;
                    break;
                case "Metaspace":
                    metaspace = Str(step, "replacement") ?? "\u2581";
                    prependScheme = Str(step, "prepend_scheme") ?? (Bool(step, "add_prefix_space", true) ? "always" : "never");
                    metaspaceSplit = Bool(step, "split", true);
                    break;
                case var t:
                    throw new ModelLoadException($"{path}: pre_tokenizer type '{t}' is not supported");
            }
        }
        if (!byteLevel && Flatten(decEl, "decoders").Any(d => Str(d, "type") == "ByteLevel")) { byteLevel = true; splitPattern ??= Gpt2Pattern; }

        bool stripLeadingSpace = false;
        string spaceMarker = metaspace ?? "\u2581";
        foreach (var d in Flatten(decEl, "decoders"))
        {
            if (Str(d, "type") == "Strip" && Str(d, "content") == " " && d.TryGetProperty("start", out var st) && st.GetInt32() > 0) stripLeadingSpace = true;
            if (Str(d, "type") == "Metaspace")
            {
                spaceMarker = Str(d, "replacement") ?? spaceMarker;
                stripLeadingSpace |= (Str(d, "prepend_scheme") ?? (Bool(d, "add_prefix_space", true) ? "always" : "never")) != "never";
            }
        }

        int size = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Max(a => a.Id) + 1);
        var idToToken = new string?[size];
        var tokenToId = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        var bytes = new byte[size][];
        var special = new bool[size];
        foreach (var (tok, id) in vocab)
        {
            idToToken[id] = tok;
            bytes[id] = byteLevel ? ByteLevel.ToBytes(tok) : SentencePieceBytes(tok, spaceMarker);
        }
        var addedMap = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (id, content, sp) in added)
        {
            idToToken[id] = content;
            tokenToId[content] = id;
            bytes[id] = Encoding.UTF8.GetBytes(content);
            special[id] = sp;
            addedMap[content] = id;
        }
        for (int i = 0; i < size; i++) bytes[i] ??= [];

        SegmentEncoder encoder;
        if (byteLevel)
        {
            if (Bool(model, "byte_fallback", false)) throw new ModelLoadException($"{path}: byte_fallback together with a ByteLevel pre-tokenizer is not supported");
            Regex regex;
            try { regex = new Regex(splitPattern!, RegexOptions.Compiled | RegexOptions.CultureInvariant); }
            catch (ArgumentException e) { throw new ModelLoadException($"{path}: pre_tokenizer regex does not compile in .NET ({e.Message})", e); }
            BpeTokenizer bpe;
            try
            {
                bpe = BpeTokenizer.Create(new BpeOptions(vocab)
                {
                    Merges = merges.Select(m => m.Item1 + " " + m.Item2),
                    ByteLevel = true,
                    PreTokenizer = new RegexPreTokenizer(regex, null),
                });
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or KeyNotFoundException)
            {
                throw new ModelLoadException($"{path}: the BPE model is inconsistent ({e.Message})", e);
            }
            encoder = (seg, first, output) =>
            {
                seg = normalize(seg, first);
                if (byteLevelPrefixSpace && !seg.StartsWith(' ')) seg = " " + seg;
                output.AddRange(bpe.EncodeToIds(seg));
            };
        }
        else
        {
            var mb = new MergeBpe(vocab, merges, Str(model, "unk_token"), Bool(model, "fuse_unk", false),
                Bool(model, "byte_fallback", false), Bool(model, "ignore_merges", false), path);
            encoder = (seg, first, output) =>
            {
                seg = normalize(seg, first);
                if (seg.Length == 0) return;
                if (metaspace is null) { mb.EncodeWord(seg, output); return; }
                seg = seg.Replace(" ", metaspace);
                if (!seg.StartsWith(metaspace, StringComparison.Ordinal) && (prependScheme == "always" || (prependScheme == "first" && first))) seg = metaspace + seg;
                if (!metaspaceSplit) { mb.EncodeWord(seg, output); return; }
                int start = 0;
                for (int i = 1; i <= seg.Length; i++)
                    if (i == seg.Length || string.CompareOrdinal(seg, i, metaspace, 0, metaspace.Length) == 0)
                    {
                        mb.EncodeWord(seg[start..i], output);
                        start = i;
                    }
            };
        }

        int? bos = config.Resolve(config.BosToken, tokenToId, "bos_token") ?? TemplateBos(root) ?? config.GenerationBos;
        bool addBos = config.AddBosToken ?? TemplateBos(root) is not null;
        return new HfTokenizer(idToToken, tokenToId, bytes, special, addedMap, encoder, stripLeadingSpace,
            bos, config.EosIds(tokenToId), config.ChatTemplate, addBos);
    }

    /// <summary>BOS from a TemplateProcessing post-processor whose single template starts with a special token.</summary>
    static int? TemplateBos(JsonElement root)
    {
        if (!root.TryGetProperty("post_processor", out var pp)) return null;
        foreach (var p in Flatten(pp, "processors"))
        {
            if (Str(p, "type") != "TemplateProcessing" || !p.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0) continue;
            if (!single[0].TryGetProperty("SpecialToken", out var stEl) || Str(stEl, "id") is not { } name) continue;
            if (p.TryGetProperty("special_tokens", out var sts) && sts.TryGetProperty(name, out var entry) && entry.TryGetProperty("ids", out var ids) && ids.GetArrayLength() > 0)
                return ids[0].GetInt32();
        }
        return null;
    }

    static byte[] SentencePieceBytes(string piece, string spaceMarker)
    {
        if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
            byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
            return [b];
        return Encoding.UTF8.GetBytes(piece.Replace(spaceMarker, " "));
    }

    static Func<string, bool, string> BuildNormalizer(JsonElement el, string path)
    {
        var steps = new List<Func<string, bool, string>>();
        foreach (var n in Flatten(el, "normalizers"))
        {
            switch (Str(n, "type"))
            {
                case "NFC": steps.Add((s, _) => Nfc.Normalize(s)); break; // string.Normalize is a no-op under InvariantGlobalization
                case "Lowercase": steps.Add((s, _) => s.ToLowerInvariant()); break;
                case "Prepend":
                    var pre = Str(n, "prepend") ?? "";
                    steps.Add((s, _) => s.Length == 0 ? s : pre + s);
                    break;
                case "Replace":
                    if (!n.TryGetProperty("pattern", out var pat) || Str(pat, "String") is not { } from)
                        throw new ModelLoadException($"{path}: normalizer Replace is only supported with a String pattern");
                    var to = Str(n, "content") ?? "";
                    steps.Add((s, _) => s.Replace(from, to, StringComparison.Ordinal));
                    break;
                case var t: throw new ModelLoadException($"{path}: normalizer type '{t}' is not supported");
            }
        }
        return steps.Count == 0 ? (s, _) => s : (s, first) => { foreach (var f in steps) s = f(s, first); return s; };
    }

    /// <summary>The steps of a (possibly Sequence) normalizer / pre-tokenizer / decoder / post-processor; none for null.</summary>
    static IEnumerable<JsonElement> Flatten(JsonElement el, string listName)
    {
        if (el.ValueKind != JsonValueKind.Object) yield break;
        if (Str(el, "type") == "Sequence" && el.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var child in list.EnumerateArray())
                foreach (var x in Flatten(child, listName)) yield return x;
        }
        else yield return el;
    }

    // ---------------------------------------------------------------- tokenizer.model

    static ITokenizer FromSentencePiece(string path, TokenizerConfig config)
    {
        SentencePieceTokenizer sp;
        try
        {
            using var fs = File.OpenRead(path);
            sp = LlamaTokenizer.Create(fs, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not ModelLoadException and not OutOfMemoryException)
        {
            throw new ModelLoadException($"{path}: not a valid SentencePiece model ({e.Message})", e);
        }
        var vocab = sp.Vocabulary;
        int size = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        foreach (var (id, _, _) in config.AddedTokens) size = Math.Max(size, id + 1);
        var idToToken = new string?[size];
        var tokenToId = new Dictionary<string, int>(StringComparer.Ordinal);
        var bytes = new byte[size][];
        var special = new bool[size];
        foreach (var (tok, id) in vocab)
        {
            idToToken[id] = tok;
            tokenToId[tok] = id;
            bytes[id] = SentencePieceBytes(tok, "\u2581");
        }
        var addedMap = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (int id in new[] { sp.BeginningOfSentenceId, sp.EndOfSentenceId, sp.UnknownId })
            if (id >= 0 && id < size && idToToken[id] is { } t) { special[id] = true; addedMap[t] = id; bytes[id] = Encoding.UTF8.GetBytes(t); }
        foreach (var (id, content, isSpecial) in config.AddedTokens)
        {
            idToToken[id] = content;
            tokenToId[content] = id;
            special[id] |= isSpecial;
            addedMap[content] = id;
            bytes[id] = Encoding.UTF8.GetBytes(content);
        }
        for (int i = 0; i < size; i++) bytes[i] ??= [];

        // Encoding is the library's (exact SentencePiece BPE, byte fallback included); each piece between added tokens
        // gets the dummy prefix, as Hugging Face's legacy LlamaTokenizer does.
        SegmentEncoder encoder = (seg, _, output) => output.AddRange(sp.EncodeToIds(seg, addBeginningOfSentence: false, addEndOfSentence: false));
        int? bos = config.Resolve(config.BosToken, tokenToId, "bos_token") ?? (sp.BeginningOfSentenceId >= 0 ? sp.BeginningOfSentenceId : null);
        var eos = config.EosIds(tokenToId);
        if (eos.Count == 0 && sp.EndOfSentenceId >= 0) eos = [sp.EndOfSentenceId];
        // Without tokenizer_config.json, a SentencePiece model adds BOS, as Hugging Face's LlamaTokenizer does by default.
        return new HfTokenizer(idToToken, tokenToId, bytes, special, addedMap, encoder, sp.AddDummyPrefix,
            bos, eos, config.ChatTemplate, config.AddBosToken ?? true);
    }

    // ---------------------------------------------------------------- helpers

    internal static JsonDocument ParseJson(string path)
    {
        try
        {
            using var fs = File.OpenRead(path);
            return JsonDocument.Parse(fs, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 });
        }
        catch (JsonException e) { throw new ModelLoadException($"{path}: malformed JSON ({e.Message})", e); }
        catch (IOException e) { throw new ModelLoadException($"{path}: cannot be read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new ModelLoadException($"{path}: cannot be read ({e.Message})", e); }
    }

    internal static string? Str(JsonElement el, string name) =>
        el.ValueKind == JsonValueKind.Object && el.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    static bool Bool(JsonElement el, string name, bool dflt) =>
        el.ValueKind == JsonValueKind.Object && el.TryGetProperty(name, out var v) ? v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => dflt } : dflt;
}
