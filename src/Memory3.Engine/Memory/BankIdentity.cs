using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;

namespace Memory3.Engine.Memory;

/// <summary>
/// The identity of a memory bank and of each memory in it (DESIGN §4 "Identity"). Memories are unreadable by any
/// other model (paper, Remark 9), so the bank fingerprint covers the model weights, the memory configuration and the
/// quantizer; a bank whose fingerprint differs from the model's is refused.
/// </summary>
public static partial class BankIdentity
{
    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Whitespace();

    /// <summary>
    /// A digest of the model's weights that does not read every byte: each safetensors file's header (names, dtypes,
    /// shapes, offsets), its length, and 64 KiB sampled at 16 evenly spaced offsets. Training changes every weight,
    /// so any retrained or different model changes the samples.
    /// </summary>
    public static string WeightsDigest(string modelDir)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = Directory.GetFiles(modelDir, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new ModelLoadException($"{modelDir}: no *.safetensors file to fingerprint");
        var buf = new byte[64 * 1024];
        foreach (var f in files)
        {
            using var fs = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.Read);
            sha.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(f) + ":" + fs.Length));
            for (int i = 0; i < 16; i++)
            {
                long at = i == 0 ? 0 : Math.Max(0, fs.Length * i / 16 - buf.Length / 2);
                fs.Position = at;
                int n = fs.Read(buf, 0, (int)Math.Min(buf.Length, fs.Length - at));
                sha.AppendData(buf, 0, n);
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>16 hex characters over the weights digest, the memory configuration and the quantizer (or "bf16").</summary>
    public static string Fingerprint(string weightsDigest, MemoryConfig memory, int headDim, string? quantizerFingerprint, string rope = "")
    {
        var s = $"{weightsDigest}|{memory.MemoryLayers}|{memory.MemoryKvHeads}|{memory.MemoryTokensPerHead}|{memory.ReferenceMaxTokens}|{headDim}|{memory.ReferencePrefix}|{rope}|{quantizerFingerprint ?? "bf16"}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)))[..16];
    }

    /// <summary>The RoPE settings stored keys were rotated with (part of the fingerprint).</summary>
    public static string RopeKey(ModelConfig c) => FormattableString.Invariant($"{c.RopeTheta}:{c.RopeScaling}");

    /// <summary>Normalised text: NFC, whitespace runs collapsed to one space, trimmed.</summary>
    public static string Normalize(string text) => Whitespace().Replace(Nfc.Normalize(text), " ").Trim();

    /// <summary>A memory's id: 32 hex characters of SHA-256 over the normalised text and the bank fingerprint.</summary>
    public static string MemoryId(string text, string fingerprint) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(fingerprint + "\n" + Normalize(text))))[..32];
}
