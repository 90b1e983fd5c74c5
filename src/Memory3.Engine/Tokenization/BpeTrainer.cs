using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Memory3.Engine.Tokenization;

/// <summary>
/// Trains a small byte-level BPE (GPT-2 byte-to-unicode mapping, Llama-3's pre-tokenizer regex) and writes a
/// Hugging Face <c>tokenizer.json</c> plus <c>tokenizer_config.json</c> that <see cref="TokenizerLoader.Load"/> reads
/// like any real model. Ids: 0..255 the bytes (in byte order), then merges in the order learned, then special tokens.
/// </summary>
public static class BpeTrainer
{
    /// <summary>Llama-3's split pattern (digits in groups of up to 3).</summary>
    public const string SplitPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static void TrainByteLevel(IEnumerable<string> corpus, int vocabSize, IReadOnlyList<string> specialTokens, string outDir,
        string? chatTemplate = null, string bosToken = "<s>", string eosToken = "</s>", bool addBosToken = true)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(specialTokens);
        ArgumentNullException.ThrowIfNull(outDir);
        var specials = new List<string>();
        foreach (var s in new[] { bosToken, eosToken }.Concat(specialTokens))
        {
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("special tokens must be non-empty", nameof(specialTokens));
            if (!specials.Contains(s)) specials.Add(s);
        }
        int numMerges = vocabSize - 256 - specials.Count;
        if (numMerges < 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"must be at least 256 + {specials.Count} special tokens");

        // 1. Unique pre-tokenized words (as byte sequences) with their counts. Special tokens in the corpus are not trained on.
        var regex = new Regex(SplitPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        var specialSplit = new Regex(string.Join("|", specials.OrderByDescending(s => s.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var doc in corpus)
            foreach (var piece in specialSplit.Split(doc))
                for (var m = regex.Match(piece); m.Success; m = m.NextMatch())
                    wordCounts[m.Value] = wordCounts.GetValueOrDefault(m.Value) + 1;

        var tokenBytes = new List<byte[]>(256 + numMerges);
        for (int b = 0; b < 256; b++) tokenBytes.Add([(byte)b]);
        var words = new List<int>[wordCounts.Count];
        var freq = new long[wordCounts.Count];
        int w = 0;
        foreach (var (word, count) in wordCounts)
        {
            var bytes = Encoding.UTF8.GetBytes(word);
            var syms = new List<int>(bytes.Length);
            foreach (var b in bytes) syms.Add(b);
            words[w] = syms;
            freq[w++] = count;
        }

        // 2. Pair statistics, with a lazy max-heap over (count, then smallest pair key for determinism).
        var pairCount = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (int i = 0; i < words.Length; i++)
        {
            var s = words[i];
            for (int j = 0; j + 1 < s.Count; j++)
            {
                long k = Key(s[j], s[j + 1]);
                pairCount[k] = pairCount.GetValueOrDefault(k) + freq[i];
                if (!pairWords.TryGetValue(k, out var set)) pairWords[k] = set = [];
                set.Add(i);
            }
        }
        var heap = new PriorityQueue<long, (long NegCount, long Key)>();
        foreach (var (k, c) in pairCount) heap.Enqueue(k, (-c, k));

        var merges = new List<(int, int)>(numMerges);
        var touched = new Dictionary<long, long>();
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < 256; i++) idOf[ByteLevel.FromBytes(tokenBytes[i])] = i;
        while (tokenBytes.Count < 256 + numMerges && heap.TryDequeue(out long key, out var pri))
        {
            long current = pairCount.GetValueOrDefault(key);
            if (current <= 0) continue;
            if (-pri.NegCount != current) continue; // stale entry; the fresh one is in the heap too
            int a = (int)(key >> 32), b = (int)(key & 0xFFFFFFFF);
            byte[] merged = [.. tokenBytes[a], .. tokenBytes[b]];
            string mergedKey = ByteLevel.FromBytes(merged);
            if (!idOf.TryGetValue(mergedKey, out int newId)) // two merges can spell the same bytes: one id, as HF's trainer does
            {
                newId = tokenBytes.Count;
                tokenBytes.Add(merged);
                idOf[mergedKey] = newId;
            }
            merges.Add((a, b));

            touched.Clear();
            foreach (int wi in pairWords[key])
            {
                var s = words[wi];
                long f = freq[wi];
                bool has = false;
                for (int j = 0; j + 1 < s.Count; j++) if (s[j] == a && s[j + 1] == b) { has = true; break; }
                if (!has) continue;
                for (int j = 0; j + 1 < s.Count; j++) Bump(touched, pairCount, Key(s[j], s[j + 1]), -f);
                int o = 0;
                for (int j = 0; j < s.Count; j++)
                {
                    if (j + 1 < s.Count && s[j] == a && s[j + 1] == b) { s[o++] = newId; j++; }
                    else s[o++] = s[j];
                }
                s.RemoveRange(o, s.Count - o);
                for (int j = 0; j + 1 < s.Count; j++)
                {
                    long k = Key(s[j], s[j + 1]);
                    Bump(touched, pairCount, k, f);
                    if (!pairWords.TryGetValue(k, out var set)) pairWords[k] = set = [];
                    set.Add(wi);
                }
            }
            pairWords.Remove(key);
            foreach (var k in touched.Keys)
            {
                long c = pairCount.GetValueOrDefault(k);
                if (c > 0 && k != key) heap.Enqueue(k, (-c, k));
            }
        }

        Write(outDir, tokenBytes, merges, specials, chatTemplate, bosToken, eosToken, addBosToken);
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    static void Bump(Dictionary<long, long> touched, Dictionary<long, long> counts, long k, long delta)
    {
        counts[k] = counts.GetValueOrDefault(k) + delta;
        touched[k] = 0;
    }

    static void Write(string outDir, List<byte[]> tokenBytes, List<(int, int)> merges, List<string> specials,
        string? chatTemplate, string bosToken, string eosToken, bool addBosToken)
    {
        Directory.CreateDirectory(outDir);
        var strings = tokenBytes.Select(b => ByteLevel.FromBytes(b)).ToList();
        var vocab = new JsonObject();
        for (int i = 0; i < strings.Count; i++) vocab[strings[i]] = i;
        var mergesJson = new JsonArray(merges.Select(m => (JsonNode)new JsonArray(strings[m.Item1], strings[m.Item2])).ToArray());
        var added = new JsonArray();
        for (int i = 0; i < specials.Count; i++)
            added.Add(new JsonObject
            {
                ["id"] = strings.Count + i, ["content"] = specials[i], ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false };
        var tok = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = SplitPattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    byteLevel.DeepClone()),
            },
            ["post_processor"] = byteLevel.DeepClone(),
            ["decoder"] = byteLevel.DeepClone(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = mergesJson,
            },
        };
        var decoderMap = new JsonObject();
        for (int i = 0; i < specials.Count; i++)
            decoderMap[(strings.Count + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = specials[i], ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
            };
        var config = new JsonObject
        {
            ["add_bos_token"] = addBosToken,
            ["add_eos_token"] = false,
            ["added_tokens_decoder"] = decoderMap,
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
            ["pad_token"] = eosToken,
            ["clean_up_tokenization_spaces"] = false,
            ["model_max_length"] = 1 << 20,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        };
        if (chatTemplate is not null) config["chat_template"] = chatTemplate;
        var opts = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Path.Combine(outDir, "tokenizer.json"), tok.ToJsonString(opts) + "\n", new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(outDir, "tokenizer_config.json"), config.ToJsonString(opts) + "\n", new UTF8Encoding(false));
    }
}
