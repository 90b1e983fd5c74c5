using System.Text.Json;
using Memory3.Engine.Model;

namespace Memory3.Engine.Tokenization;

/// <summary>What the loader reads from tokenizer_config.json and generation_config.json (both optional).</summary>
internal sealed class TokenizerConfig
{
    public string Path { get; private init; } = "tokenizer_config.json";
    public string GenerationPath { get; private init; } = "generation_config.json";
    public string? BosToken { get; private init; }
    public string? EosToken { get; private init; }
    public bool? AddBosToken { get; private init; }
    public string? ChatTemplate { get; private init; }
    public List<(int Id, string Content, bool Special)> AddedTokens { get; } = [];
    public int? GenerationBos { get; private set; }
    public List<int> GenerationEos { get; } = [];

    public static TokenizerConfig Read(string path, string generationPath)
    {
        TokenizerConfig c;
        if (File.Exists(path))
        {
            using var doc = TokenizerLoader.ParseJson(path);
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new ModelLoadException($"{path}: expected a JSON object");
            c = new TokenizerConfig
            {
                Path = path,
                GenerationPath = generationPath,
                BosToken = TokenString(r, "bos_token", path),
                EosToken = TokenString(r, "eos_token", path),
                AddBosToken = r.TryGetProperty("add_bos_token", out var ab) ? ab.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    JsonValueKind.Null => null,
                    _ => throw new ModelLoadException($"{path}: add_bos_token must be true or false"),
                } : null,
                ChatTemplate = Template(r, path),
            };
            if (r.TryGetProperty("added_tokens_decoder", out var atd) && atd.ValueKind == JsonValueKind.Object)
                foreach (var p in atd.EnumerateObject())
                {
                    if (!int.TryParse(p.Name, out int id) || id < 0 || TokenizerLoader.Str(p.Value, "content") is not { } content)
                        throw new ModelLoadException($"{path}: added_tokens_decoder['{p.Name}'] needs an integer key and a content");
                    c.AddedTokens.Add((id, content, p.Value.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True));
                }
        }
        else c = new TokenizerConfig { Path = path, GenerationPath = generationPath };

        if (File.Exists(generationPath))
        {
            using var doc = TokenizerLoader.ParseJson(generationPath);
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new ModelLoadException($"{generationPath}: expected a JSON object");
            if (r.TryGetProperty("eos_token_id", out var e))
            {
                if (e.ValueKind == JsonValueKind.Number) c.GenerationEos.Add(Id(e, generationPath, "eos_token_id"));
                else if (e.ValueKind == JsonValueKind.Array) foreach (var x in e.EnumerateArray()) c.GenerationEos.Add(Id(x, generationPath, "eos_token_id"));
                else if (e.ValueKind != JsonValueKind.Null) throw new ModelLoadException($"{generationPath}: eos_token_id must be an integer or a list of integers");
            }
            if (r.TryGetProperty("bos_token_id", out var b) && b.ValueKind == JsonValueKind.Number) c.GenerationBos = Id(b, generationPath, "bos_token_id");
        }
        return c;
    }

    static int Id(JsonElement e, string path, string field) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) && v >= 0 ? v : throw new ModelLoadException($"{path}: {field} must hold non-negative integers");

    /// <summary>A special-token field: a string, an AddedToken object {"content": ...}, or null.</summary>
    static string? TokenString(JsonElement r, string name, string path)
    {
        if (!r.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Object && TokenizerLoader.Str(v, "content") is { } c) return c;
        throw new ModelLoadException($"{path}: {name} must be a string or an object with a content");
    }

    /// <summary>chat_template: a string, or a list of {name, template} from which "default" is taken.</summary>
    static string? Template(JsonElement r, string path)
    {
        if (!r.TryGetProperty("chat_template", out var t) || t.ValueKind == JsonValueKind.Null) return null;
        if (t.ValueKind == JsonValueKind.String) return t.GetString();
        if (t.ValueKind == JsonValueKind.Array)
        {
            foreach (var e in t.EnumerateArray())
                if (TokenizerLoader.Str(e, "name") == "default") return TokenizerLoader.Str(e, "template");
            return null;
        }
        throw new ModelLoadException($"{path}: chat_template must be a string or a list of {{name, template}}");
    }

    public int? Resolve(string? token, Dictionary<string, int> tokenToId, string field)
    {
        if (token is null) return null;
        return tokenToId.TryGetValue(token, out int id) ? id : throw new ModelLoadException($"{Path}: {field} '{token}' is not a token of the vocabulary");
    }

    public List<int> EosIds(Dictionary<string, int> tokenToId)
    {
        var ids = new List<int>();
        if (Resolve(EosToken, tokenToId, "eos_token") is int e) ids.Add(e);
        foreach (int g in GenerationEos) if (!ids.Contains(g)) ids.Add(g);
        return ids;
    }
}
