using System.IO.Compression;
using System.Text.Json;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Tests.Tokenization;

/// <summary>One entry of Fixtures/tokenizers/reference.json (made by make-reference.mjs with independent JS tokenizers).</summary>
public sealed record ReferenceCase(string Text, int[] Ids, int[] IdsWithSpecial, string Decoded, string DecodedSkipSpecial);

/// <summary>The vendored real tokenizers, each loaded once per test run (gzipped files are unpacked to a temp dir first).</summary>
public static class TokenizerFixtures
{
    public static readonly string[] Names = ["qwen3", "llama3", "mistral", "llama2-sp"];

    static readonly string Root = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers");
    static readonly Dictionary<string, Lazy<ITokenizer>> Loaded = Names.ToDictionary(n => n, n => new Lazy<ITokenizer>(() => TokenizerLoader.Load(Dir(n))));
    static readonly Lazy<Dictionary<string, ReferenceCase[]>> Refs = new(() =>
        JsonSerializer.Deserialize<Dictionary<string, ReferenceCase[]>>(File.ReadAllText(Path.Combine(Root, "reference.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!);

    public static ITokenizer Get(string name) => Loaded[name].Value;

    public static ReferenceCase[] Reference(string name) => Refs.Value[name];

    /// <summary>A model directory holding the fixture's files, gzipped ones unpacked.</summary>
    public static string Dir(string name)
    {
        var src = Path.Combine(Root, name);
        if (!Directory.EnumerateFiles(src, "*.gz").Any()) return src;
        // A stable place, so repeated test runs reuse the unpacked files; each file appears atomically.
        var dst = Path.Combine(Path.GetTempPath(), "memory3-tok-fixtures", name);
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.EnumerateFiles(src))
        {
            var target = Path.Combine(dst, Path.GetFileName(f).EndsWith(".gz") ? Path.GetFileNameWithoutExtension(f) : Path.GetFileName(f));
            if (File.Exists(target) && File.GetLastWriteTimeUtc(target) >= File.GetLastWriteTimeUtc(f)) continue;
            var tmp = $"{target}.{Environment.ProcessId}.tmp";
            if (f.EndsWith(".gz"))
            {
                using var gz = new GZipStream(File.OpenRead(f), CompressionMode.Decompress);
                using var o = File.Create(tmp);
                gz.CopyTo(o);
            }
            else File.Copy(f, tmp, overwrite: true);
            File.Move(tmp, target, overwrite: true);
        }
        return dst;
    }

    public static IEnumerable<object[]> AllCases() =>
        Names.SelectMany(n => Enumerable.Range(0, Reference(n).Length).Select(i => new object[] { n, i }));
}
