using System.Text;

namespace Memory3.Engine.Memory.Ingest;

/// <summary>A document to ingest, or the reason it cannot be.</summary>
public sealed record Document(string Source, string? Text, string? Error)
{
    public bool Ok => Error is null;
}

/// <summary>
/// Reads text and markdown files (or folders of them) for ingestion. Each bad file gets its own clear error and
/// the rest go on: empty files, binary files (a NUL byte), text that is not valid UTF-8, and lines longer than
/// <see cref="MaxLineBytes"/> (a single 10 MB line is not prose that can be cut at sentences).
/// </summary>
public sealed class DocumentReader
{
    public static readonly string[] Extensions = [".txt", ".md", ".markdown", ".text"];
    public int MaxLineBytes { get; init; } = 1 << 20;
    public long MaxFileBytes { get; init; } = 256L << 20;

    public IEnumerable<Document> Read(IEnumerable<string> paths)
    {
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal);
                foreach (var f in files) yield return ReadFile(f);
            }
            else if (File.Exists(path)) yield return ReadFile(path);
            else yield return new Document(path, null, "no such file or directory");
        }
    }

    public Document ReadFile(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > MaxFileBytes) return new Document(path, null, $"file is {info.Length:N0} bytes; the largest accepted is {MaxFileBytes:N0}");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Document(path, null, e.Message);
        }
        return FromBytes(path, bytes);
    }

    public Document FromBytes(string source, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) bytes = bytes[3..];
        if (bytes.IsEmpty) return new Document(source, null, "empty file");
        int nul = bytes.IndexOf((byte)0);
        if (nul >= 0) return new Document(source, null, $"binary file (a NUL byte at offset {nul})");
        int lineStart = 0, lineNo = 1;
        while (lineStart < bytes.Length)
        {
            int nl = bytes[lineStart..].IndexOf((byte)'\n');
            int len = nl < 0 ? bytes.Length - lineStart : nl;
            if (len > MaxLineBytes) return new Document(source, null, $"line {lineNo} is {len:N0} bytes long; the longest line accepted is {MaxLineBytes:N0}");
            if (nl < 0) break;
            lineStart += nl + 1;
            lineNo++;
        }
        string text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException e) { return new Document(source, null, $"not valid UTF-8 (at byte {e.Index})"); }
        if (string.IsNullOrWhiteSpace(text)) return new Document(source, null, "empty file (only whitespace)");
        return new Document(source, text, null);
    }
}
