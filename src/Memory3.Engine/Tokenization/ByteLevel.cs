namespace Memory3.Engine.Tokenization;

/// <summary>GPT-2's reversible byte &lt;-&gt; printable-character mapping used by byte-level BPE vocabularies.</summary>
internal static class ByteLevel
{
    /// <summary>ByteToChar[b] is the character that stands for byte b in a byte-level vocabulary.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Inverse of <see cref="ByteToChar"/>; -1 for characters that stand for no byte.</summary>
    public static readonly short[] CharToByte = BuildCharToByte();

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    static short[] BuildCharToByte()
    {
        var inv = new short[512];
        Array.Fill(inv, (short)-1);
        for (int b = 0; b < 256; b++) inv[ByteToChar[b]] = (short)b;
        return inv;
    }

    /// <summary>The bytes a byte-level token string stands for.</summary>
    public static byte[] ToBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            char c = token[i];
            short b = c < CharToByte.Length ? CharToByte[c] : (short)-1;
            if (b < 0) return System.Text.Encoding.UTF8.GetBytes(token); // not a byte-level string: take it literally
            bytes[i] = (byte)b;
        }
        return bytes;
    }

    public static string FromBytes(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }
}
